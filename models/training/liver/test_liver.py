#!/usr/bin/python3
"""Checks of the liver phantoms, A-QCF-Net and the metrics (about a minute on one core):

    cd models/training/liver && OMP_NUM_THREADS=1 /usr/bin/python3 -m unittest test_liver -v
"""
from __future__ import annotations

import sys
import unittest
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import aqcf_net as an  # noqa: E402
import metrics as mt  # noqa: E402

torch.set_num_threads(1)


class Quaternion(unittest.TestCase):
    def test_quarter_parameters(self):
        for cin, cout, k in ((4, 4, 1), (64, 128, 3), (32, 16, 3)):
            q = an.QuaternionConv2d(cin, cout, k, bias=False)
            r = torch.nn.Conv2d(cin, cout, k, bias=False)
            self.assertEqual(4 * an.n_params(q), an.n_params(r))
            self.assertEqual(tuple(q.weight().shape), tuple(r.weight.shape))

    def test_hamilton_product(self):
        self.assertLess(an.check_hamilton(), 1e-5)

    def test_norm_is_multiplicative(self):
        # |W (x) x| = |W| |x| per pixel for a 1-channel quaternion conv (a Hamilton-product property a real conv lacks)
        q = an.QuaternionConv2d(4, 4, 1, bias=False)
        x = torch.randn(1, 4, 5, 5)
        y = q(x)
        w = torch.stack([q.r, q.i, q.j, q.kk]).reshape(4).norm()
        torch.testing.assert_close(y.norm(dim=1), x.norm(dim=1) * w, rtol=1e-4, atol=1e-5)


class Network(unittest.TestCase):
    def test_shapes_and_modality_selector(self):
        torch.manual_seed(0)
        m = an.AQCFNet(base=8, depth=3).eval()
        x = torch.randn(2, 1, 32, 32)
        with torch.no_grad():
            a = m(x, torch.tensor([1.0, 1.0]))
            b = m(x, torch.tensor([0.0, 0.0]))
        self.assertEqual(tuple(a.shape), (2, 3, 32, 32))
        self.assertGreater(float((a - b).abs().max()), 1e-4)  # CT and MRI paths differ

    def test_cross_fusion_both_ways(self):
        torch.manual_seed(0)
        m = an.AQCFNet(base=8, depth=3)
        x = torch.randn(2, 1, 32, 32)
        for mod, other in ((1.0, 1), (0.0, 0)):
            m.zero_grad()
            m(x, torch.tensor([mod, mod])).sum().backward()
            # the stream of the other modality gets gradient only through the cross-fusion blocks
            g = m.enc[other][0].c1.r.grad
            self.assertIsNotNone(g)
            self.assertGreater(float(g.abs().sum()), 0.0)

    def test_baseline_same_budget(self):
        n = an.n_params(an.AQCFNet(16))
        for name in ("unet-ct", "unet-mr"):
            u = an.build(name, 16)
            self.assertLess(abs(an.n_params(u) - n) / n, 0.1)


class Metrics(unittest.TestCase):
    def test_lesionwise(self):
        t = np.zeros((10, 40, 40), np.uint8)
        t[2:8, 5:35, 5:35] = 1
        t[4:6, 10:14, 10:14] = 2  # small lesion
        t[3:7, 20:30, 20:30] = 2  # large lesion
        p = t.copy()
        p[4:6, 10:14, 10:14] = 1  # small lesion missed
        p[5, 30:33, 5:8] = 2  # one false positive
        r = mt.case_metrics(p, t, [3.0, 1.0, 1.0])
        self.assertEqual(sorted(l["detected"] for l in r["lesions"]), [False, True])
        self.assertEqual(len(r["false_positives_mm"]), 1)
        s = mt.summarise([r])
        self.assertEqual(s["detection"]["<10"]["fn"], 1)
        self.assertEqual(s["detection"][">20"]["tp"] + s["detection"]["10-20"]["tp"], 1)
        self.assertAlmostEqual(r["liver_dice"], 1.0, places=6)
        self.assertLess(r["tumour_dice"], 1.0)


class PostProcess(unittest.TestCase):
    def test_largest_liver_component_and_small_tumours(self):
        import liver_post as lp
        p = np.zeros((6, 30, 30), np.uint8)
        p[1:5, 2:20, 2:20] = 1  # the liver
        p[2:4, 5:9, 5:9] = 2  # tumour: 2 x 4 x 4 voxels of 2 x 1 x 1 mm = 0.064 mL
        p[2, 12, 12] = 2  # 1 voxel = 0.002 mL
        p[1:5, 25:28, 25:28] = 1  # a separate smaller 'liver' island (spleen-like false positive)
        p[2, 26, 26] = 2
        q = lp.postprocess(p, [2.0, 1.0, 1.0], 0.01)
        self.assertEqual(int((q[:, 24:, 24:] >= 1).sum()), 0)  # the island is gone, tumour included
        self.assertEqual(int(q[2, 12, 12]), 1)  # below 0.01 mL: liver
        self.assertEqual(int((q == 2).sum()), 32)
        q = lp.postprocess(p, [2.0, 1.0, 1.0], 0.065)  # 0.064 < 0.065: the tumour becomes liver too
        self.assertEqual(int((q == 2).sum()), 0)
        self.assertEqual(int((q >= 1).sum()), 4 * 18 * 18)
        # 26-connectivity: a tumour touching diagonally across slices is one component
        p2 = np.zeros((4, 10, 10), np.uint8)
        p2[:, 1:9, 1:9] = 1
        p2[1, 3, 3] = p2[2, 4, 4] = 2
        m = lp.measure(lp.postprocess(p2, [1.0, 1.0, 1.0], 0.0), [1.0, 1.0, 1.0])
        self.assertEqual(m["tumourCount"], 1)

    def test_shape_rules(self):
        """The same cases as test/pipelines/liver-task.test.ts 'shape rules'."""
        import liver_post as lp
        z, r, c = np.mgrid[0:15, 0:40, 0:40]
        lab = np.ones((15, 40, 40), np.uint8)
        lab[(z == 7) & ((r - 8) ** 2 + (c - 8) ** 2 <= 36)] = 2  # A: a 13 mm disc on one middle slice
        lab[(z - 7) ** 2 + (r - 8) ** 2 + (c - 28) ** 2 <= 25] = 2  # B: a ball
        lab[z ** 2 + (r - 28) ** 2 + (c - 8) ** 2 <= 25] = 2  # C: a ball cut by the first slice
        lab[(r >= 27) & (r <= 28) & (c >= 20)] = 2  # D: a 2 x 20 mm tube through every slice
        sp = [1.0, 1.0, 1.0]
        self.assertEqual(lp.measure(lp.postprocess(lab, sp, 0.0), sp)["tumourCount"], 4)
        q = lp.postprocess(lab, sp, 0.0, 3.0, 0.3)
        self.assertEqual([int(q[7, 8, 8]), int(q[7, 27, 30]), int(q[7, 8, 28]), int(q[0, 28, 8])], [1, 1, 2, 2])
        self.assertEqual(lp.measure(q, sp)["tumourCount"], 2)
        self.assertEqual(int(lp.postprocess(lab, sp, 0.0, 3.0, 0.0)[7, 27, 30]), 2)  # the tube ends at the series' ends
        self.assertEqual(int(lp.postprocess(lab, sp, 0.0, 0.0, 0.3)[7, 8, 8]), 2)  # the disc is round
        last = np.ones_like(lab)
        last[14][(r[0] - 8) ** 2 + (c[0] - 8) ** 2 <= 36] = 2
        self.assertEqual(int((lp.postprocess(last, sp, 0.0, 3.0, 0.0) == 2).sum()), 0)  # judged on its inner side
        self.assertEqual(int((lp.postprocess(last[14:], sp, 0.0, 3.0, 0.0) == 2).sum()), 113)  # one slice: not judged

    def test_measure_diameter_volume(self):
        import liver_post as lp
        lab = np.zeros((5, 40, 40), np.uint8)
        lab[:, 5:35, 5:35] = 1
        lab[2, 10:13, 10:20] = 2  # 3 x 10 px at 0.5 mm: centres 4.5 mm apart along columns, 1 mm along rows
        lab[1, 11, 12] = 2  # same component (26-connected), smaller on its slice
        m = lp.measure(lab, [3.0, 0.5, 0.5], ipp_first=[-10.0, -20.0, 100.0])
        self.assertEqual(m["tumourCount"], 1)
        t = m["tumours"][0]
        self.assertEqual(t["voxels"], 31)
        self.assertAlmostEqual(t["ml"], 31 * 0.75 / 1000)
        self.assertAlmostEqual(t["longestAxialDiameterMm"], float(np.hypot(4.5, 1.0)) + 0.5, places=6)
        self.assertAlmostEqual(m["liverMl"], 5 * 30 * 30 * 0.75 / 1000)
        c = t["centroidVoxel"]
        self.assertAlmostEqual(t["centroidLpsMm"][0], -10.0 + c["column"] * 0.5)
        self.assertAlmostEqual(t["centroidLpsMm"][2], 100.0 + c["slice"] * 3.0)


class Phantoms(unittest.TestCase):
    def test_label_offset_evidence(self):
        from anatomy import check_label_offset, LABEL_OFFSET
        r = check_label_offset()
        self.assertGreater(r[LABEL_OFFSET]["lung_air"], 0.9)
        self.assertGreater(r[LABEL_OFFSET]["liver_soft"], 0.99)
        self.assertLess(r[0]["lung_air"], 0.2)  # the header's offset (0) does not fit

    def test_ct_deterministic_and_labels(self):
        import ct_phantoms as ctp
        from anatomy import choose_source
        seed = next(s for s in range(5, 100) if not choose_source("test", s, 105)[1])  # a liver-slab phantom
        a = ctp.generate_ct("test", seed, matrix_choices=(256,), slice_subset=3)
        b = ctp.generate_ct("test", seed, matrix_choices=(256,), slice_subset=3)
        np.testing.assert_array_equal(a.hu, b.hu)
        self.assertTrue(set(np.unique(a.label)) <= {0, 1, 2})
        self.assertTrue((a.label >= 1).any())
        self.assertTrue(np.all(a.label[a.instances > 0] == 2))
        liver = a.label >= 1
        body_soft = (a.hu > -200) & (a.hu < 300)
        self.assertGreater(float(np.mean(body_soft[liver])), 0.95)

    def test_vessels_are_liver_mimics(self):
        """Vessel trees: inside the liver, labelled liver, native ones hypodense; every other draw unchanged."""
        import ct_phantoms as ctp
        from anatomy import choose_source, load_source
        src = load_source()
        trees = ctp.draw_vessels("train", 0, src, "native")
        self.assertEqual(len(trees), 2)
        depth = ctp._liver_depth(src)
        for pts, rad, delta in trees:
            self.assertGreater(len(pts), 100)  # > 50 mm of centre line
            self.assertTrue(-25 <= delta <= -8)
            self.assertLessEqual(float(rad.max()), 6 * 1.15 + 1e-4)
            v = np.round(src.ras_to_vox(pts.astype(np.float64))).astype(int)
            self.assertTrue(np.all(depth[tuple(v.T)] > 0))  # every centre-line point in the liver
        seed = next(s for s in range(5, 100) if not choose_source("test", s, 105)[1]
                    and ctp.draw_vessels("test", s, src, "native"))
        a = ctp.generate_ct("test", seed, matrix_choices=(256,), slice_subset=3)
        old = ctp.VESSEL_P
        try:
            ctp.VESSEL_P = 0.0
            b = ctp.generate_ct("test", seed, matrix_choices=(256,), slice_subset=3)
        finally:
            ctp.VESSEL_P = old
        self.assertEqual(ctp.params_json(a.params), ctp.params_json(b.params))  # own stream: the rest unchanged
        np.testing.assert_array_equal(a.label, b.label)  # vessels are liver, never tumour
        from scipy import ndimage
        changed = np.abs(a.hu.astype(int) - b.hu) > 5
        self.assertTrue(changed.any())
        near_liver = ndimage.binary_dilation(a.label >= 1, structure=np.ones((1, 5, 5), bool))  # PSF spreads 1-2 px
        self.assertGreater(float(np.mean(near_liver[changed])), 0.99)

    def test_negative_slab_is_liver_free(self):
        import ct_phantoms as ctp
        from anatomy import choose_source
        seed = next(s for s in range(100) if choose_source("train", s, 105)[1])
        st = ctp.generate_ct("train", seed, matrix_choices=(256,), slice_subset=2)
        self.assertEqual(st.params.tumour_kind, "none")
        self.assertFalse(st.params.cysts)
        self.assertEqual(int(st.label.max()), 0)
        self.assertGreater(int((st.hu > -500).sum()), 10000)  # a body is there
        self.assertTrue(0.05 < np.mean([choose_source("train", s, 105)[1] for s in range(400)]) < 0.25)

    def test_mr_unpaired_with_ct(self):
        import ct_phantoms as ctp
        import mr_phantoms as mrp
        from anatomy import load_source
        src = load_source()
        for s in range(5):
            c = ctp.draw_ct_params("train", s, src)
            m = mrp.draw_mr_params("train", s, src)
            self.assertNotEqual(c.pose.rotation_deg, m.pose.rotation_deg)
            self.assertFalse({tuple(l.centre_ras) for l in c.lesions} & {tuple(l.centre_ras) for l in m.lesions})
        st = mrp.generate_mr("test", 7, matrix_choices=(192,), slice_subset=2)
        self.assertTrue(set(np.unique(st.label)) <= {0, 1, 2})
        self.assertEqual(st.img.dtype, np.uint16)


if __name__ == "__main__":
    unittest.main()
