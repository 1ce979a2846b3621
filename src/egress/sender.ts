/**
 * What the egress worker hands a transport (DIMSE or DICOMweb), and what it gets back.
 * A sender never touches the outbox: it reports per-instance outcomes and whether the destination
 * was reached at all, and the worker decides states and backoff.
 */

export interface SendItem {
  /** Outbox row id (echoed back in the result). */
  id: number;
  path: string;
  sopInstanceUid: string;
  sopClassUid: string;
  studyInstanceUid: string;
  transferSyntaxUid: string;
}

export interface ItemResult {
  id: number;
  ok: boolean;
  /** DIMSE status (e.g. 0x0000, 0xB000, 0xA700) or HTTP status; null when nothing came back. */
  status: number | null;
  /** Operator-readable reason for a failure, or the text of a warning. */
  message?: string;
  /** Retrying cannot help (e.g. the file is gone): the row goes straight to dead. */
  permanent?: boolean;
}

export interface BatchResult {
  /** One result per item, in any order. */
  items: ItemResult[];
  /** Batch-level error (connection refused, association rejected, HTTP 5xx …), if any. */
  error?: string;
  /** Milliseconds the batch took. */
  ms: number;
  bytes: number;
}

export interface Sender {
  /** Send one batch over one association / one request. Never throws: failures are in the result. */
  send(items: SendItem[]): Promise<BatchResult>;
}
