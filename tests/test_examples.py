"""Smoke runs of the scripts in examples/: each exits 0 and writes its outputs.

To cover another example, add one line to ``EXAMPLES``: the script, its arguments (``{tmp}``
is the test's temporary folder) and the files it must write there.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = [
    ("grid_search_pipeline.py", ["--quick", "--out", "{tmp}/x.png"], ["x.png"]),
    ("plot_reconstructions.py", ["--quick", "--out", "{tmp}/reconstructions.png"],
     ["reconstructions.png"]),
    ("plot_convolutional.py", ["--quick", "--out", "{tmp}/convolutional.png"],
     ["convolutional.png"]),
    ("plot_denoising.py", ["--quick", "--out", "{tmp}/denoising.png"], ["denoising.png"]),
    ("plot_sparse_filters.py", ["--quick", "--out", "{tmp}/sparse_filters.png"],
     ["sparse_filters.png"]),
    ("plot_contractive.py", ["--quick", "--out", "{tmp}/contractive.png"], ["contractive.png"]),
    ("plot_vae_manifold.py", ["--quick", "--out", "{tmp}/vae_manifold.png"], ["vae_manifold.png"]),
    ("plot_novelty_detection.py", ["--quick", "--out", "{tmp}/novelty_detection.png"],
     ["novelty_detection.png"]),
]


@pytest.mark.parametrize("script, args, outputs", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_runs(script, args, outputs, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if env.get("SKAE_DATA"):  # the README's ../shared/data, from the script's own folder
        env["SKAE_DATA"] = str(Path(env["SKAE_DATA"]).expanduser().resolve())
    command = [sys.executable, str(ROOT / "examples" / script)]
    command += [arg.format(tmp=tmp_path) for arg in args]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    for name in outputs:
        written = tmp_path / name
        assert written.is_file() and written.stat().st_size > 0, f"{script} wrote no {name}"
