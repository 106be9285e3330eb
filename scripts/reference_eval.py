"""The reference numbers for `cyclegan eval --real A --fake B --json`: pytorch-fid's FID
(its InceptionV3, loading, resizing and `calculate_frechet_distance`) and torch-fidelity's
KID (`kid_features_to_metric`, default 100 subsets, subset size capped at the smaller set
as `cyclegan eval` does) on the same pool3 features. torch-fidelity's own feature extractor
downloads another copy of the weights, so its KID is computed here on pytorch-fid's features.

    ~/.venvs/torchref/bin/python scripts/reference_eval.py WEIGHTS.pth DIR_A DIR_B
"""
import json, sys

import numpy as np
import torch
import pytorch_fid.inception as pfi
from pytorch_fid.fid_score import calculate_activation_statistics, calculate_frechet_distance
from torch_fidelity.metric_kid import kid_features_to_metric

weights, dir_a, dir_b = sys.argv[1:4]
torch.set_num_threads(2)
state = torch.load(weights, map_location="cpu")
pfi.load_state_dict_from_url = lambda *a, **k: state  # the file named, not a download
model = pfi.InceptionV3([3]).eval()


def files(d):
    import pathlib
    return sorted(str(p) for p in pathlib.Path(d).rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def stats(d):
    from pytorch_fid.fid_score import get_activations
    act = get_activations(files(d), model, batch_size=50, dims=2048, device="cpu", num_workers=0)
    return act, np.mean(act, axis=0), np.cov(act, rowvar=False)


a, mu_a, s_a = stats(dir_a)
b, mu_b, s_b = stats(dir_b)
fid = calculate_frechet_distance(mu_a, s_a, mu_b, s_b)
size = min(len(a), len(b), 1000)
kid = kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), kid_subsets=100, kid_subset_size=size,
                             kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                             kid_kernel_poly_coef0=1, rng_seed=2020, verbose=False)
print(json.dumps({"fid": float(fid), "kid": kid["kernel_inception_distance_mean"],
                  "kid_std": kid["kernel_inception_distance_std"], "n_a": len(a), "n_b": len(b)}))
