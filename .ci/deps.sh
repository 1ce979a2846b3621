#!/usr/bin/env bash
# Installs the Debian packages the tests use, only those missing (a fresh machine has none).
# Real peers, not mocks: Orthanc + DICOMweb plugin (PACS), DCMTK (second peer, speed reference),
# dicom3tools (dciodvfy validator), Chromium (admin page and OHIF tests), Redis (multi-node queue),
# pydicom's malformed test files (bad-input corpus), openssl (the TLS tests make their certificates).
set -euo pipefail
PKGS=(orthanc orthanc-dicomweb dcmtk dicom3tools chromium redis-server python3-pydicom openssl)
# Model training/evaluation (not needed to run the node or its tests, only to reproduce models):
if [ "${WITH_TRAINING_DEPS:-0}" = "1" ]; then
  PKGS+=(python3-torch python3-onnx python3-numpy python3-nibabel python3-scipy mricron-data python3-nipype invesalius-examples)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all Debian packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts packaged services on install where it can; the tests start their own on free ports.
for svc in orthanc redis-server; do $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
echo "deps: done"
