"""The em_segmentation bundle through MONAI's own CLI: train, inference (3D chunked, 2D streamed), DDP, checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, verify_metadata, verify_net_in_out
from PIL import Image

from monai_em.data.synthetic import make_em_volume
from monai_em.data.tile_format import write_tiled_volume
from monai_em.training import read_checkpoint

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "em_segmentation"
CONFIGS = BUNDLE / "configs"
META = CONFIGS / "metadata.json"
SCHEMA = CONFIGS / "schema" / "metadata_schema.json"
SHAPE = (12, 64, 64)  # tiny volume: 8 training sections + 4 held out
WINDOW = ["--input_size", "[4, 32, 32]", "--num_threads", "1"]  # patch small enough for CPU seconds
TINY = [*WINDOW, "--net_filters", "[4, 8, 16, 32]"]  # ... and a non-default network to train


def run_bundle(configs, bundle_root, *overrides, torchrun: int = 0, timeout: int = 300):
    """``python -m monai.bundle run`` (or torchrun) in a subprocess; fails the test with its output."""
    files = [str(CONFIGS / c) if "/" not in str(c) else str(c) for c in configs]
    launcher = [sys.executable, "-m", "monai.bundle"]
    if torchrun:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}",
                    "-m", "monai.bundle"]  # fmt: skip
    cmd = [*launcher, "run", "--config_file", repr(files), "--meta_file", str(META), "--bundle_root", str(bundle_root),
           *map(str, overrides)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        pytest.fail(
            f"bundle run failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def tiled_data(tmp_path_factory):
    """The synthetic volume as image / label / valid-mask tile JSONs; the valid mask blanks 16 columns."""
    root = tmp_path_factory.mktemp("tiles")
    vol = make_em_volume(SHAPE, seed=3)
    valid = np.ones(SHAPE, np.uint8)
    valid[:, :, -16:] = 0
    return {
        "image": write_tiled_volume(vol.image, root / "image", tile_size=40, json_name="image.json"),
        "label": write_tiled_volume(vol.label * valid, root / "label", tile_size=40, json_name="label.json"),
        "valid": write_tiled_volume(valid, root / "valid", tile_size=40, json_name="valid.json"),
    }


@pytest.fixture(scope="module")
def trained(tiled_data, tmp_path_factory):
    """One short training run on the tile JSONs (valid mask included): its bundle root."""
    root = tmp_path_factory.mktemp("bundle3d")
    run_bundle(
        ["train.yaml"], root, *TINY,
        "--image_json", tiled_data["image"], "--label_json", tiled_data["label"], "--valid_json", tiled_data["valid"],
        "--val_sections", 4, "--epochs", 2, "--epoch_length", 2, "--batch_size", 1, "--chunk_iter", 3,
    )  # fmt: skip
    return root


def test_train_writes_checkpoints_and_logs(trained):
    best, final = trained / "models" / "model.pt", trained / "models" / "final_model.pt"
    assert best.is_file() and final.is_file()
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.yaml")
    parser["net_filters"] = [4, 8, 16, 32]
    net = parser.get_parsed_content("network_def")
    ckpt = read_checkpoint(best)
    net.load_state_dict(ckpt["model"])  # strict: every key matches
    assert ckpt["network"]["args"]["filters"] == [4, 8, 16, 32]  # the network travels with its weights
    assert ckpt["train_settings"]["input_size"] == [4, 32, 32]
    events = list((trained / "eval").glob("events.out.tfevents.*"))
    assert events, "TensorBoard handler wrote nothing"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for path in events:
        acc = EventAccumulator(str(path), size_guidance={"images": 0})
        acc.Reload()
        tags |= set(acc.Tags()["images"])
    assert {"input_0_HWD/image", "input_1_HWD/image", "output_HWD/image"} <= tags  # image, target, prediction


def test_chunked_inference_writes_stitched_volume(trained, tiled_data):
    """No network settings on the command line: inference rebuilds the trained (non-default) network
    from the checkpoint alone."""
    out = trained / "pred"
    run_bundle(
        ["inference.yaml"], trained, *WINDOW, "--image_json", tiled_data["image"], "--output_dir", out,
        "--infer_chunk_num", "[2, 1, 2]", "--infer_pad_size", "[2, 8, 8]",
    )  # fmt: skip
    with h5py.File(out / "prediction.h5", "r") as f:
        pred = f["main"][()]
    assert pred.shape == (1, *SHAPE) and pred.dtype == np.uint8
    assert len(list(out.glob("*-*-*-*-*-*.h5"))) == 4  # one file per chunk (resumable)
    assert pred.std() > 0  # a real prediction, not a constant fill


@pytest.mark.slow
def test_inference_of_a_section_range(trained, tiled_data):
    out = trained / "pred_range"
    run_bundle(
        ["inference.yaml"], trained, *TINY, "--image_json", tiled_data["image"], "--output_dir", out,
        "--z_range", "[-5, None]",
    )  # fmt: skip
    with h5py.File(out / "prediction.h5", "r") as f:
        assert f["main"].shape == (1, 5, *SHAPE[1:])


@pytest.mark.slow  # ~15 s idle, ~45 s on a busy 2-core machine
def test_train_2d_and_streamed_2d_inference(tmp_path):
    run_bundle(
        ["train.yaml", "train_2d.yaml"], tmp_path, *TINY, "--input_size", "[1, 32, 32]",
        "--synthetic_shape", list(SHAPE), "--val_sections", 4, "--epochs", 1, "--epoch_length", 2,
    )  # fmt: skip
    assert (tmp_path / "models" / "model_2d.pt").is_file()
    vol = make_em_volume((2, 48, 40), seed=5)
    paths = []
    for z in range(2):
        paths.append(tmp_path / f"section_{z}.png")
        Image.fromarray(vol.image[z]).save(paths[-1])
    (tmp_path / "list.txt").write_text("\n".join(map(str, paths)) + "\n")
    out = tmp_path / "pred2d"
    run_bundle(
        ["inference_2d.yaml"], tmp_path, *TINY, "--input_size", "[1, 32, 32]", "--image_list", tmp_path / "list.txt",
        "--output_dir", out,
    )  # fmt: skip
    for z in range(2):
        pred = np.asarray(Image.open(out / f"section_{z}.png"))
        assert pred.shape == (48, 40) and pred.dtype == np.uint8


@pytest.mark.slow
def test_affinity_target_trains_three_channels(tmp_path):
    run_bundle(
        ["train.yaml"], tmp_path, *TINY, "--target", "affinity", "--synthetic_shape", list(SHAPE),
        "--val_sections", 0, "--epochs", 1, "--epoch_length", 1, "--augment", "False",
    )  # fmt: skip
    state = read_checkpoint(tmp_path / "models" / "final_model.pt")["model"]
    out_layer = [v for k, v in state.items() if k.startswith("output_block") and k.endswith("weight")]
    assert out_layer and out_layer[0].shape[0] == 3  # z, y, x affinities


def test_ddp_two_ranks_read_disjoint_chunks(tmp_path):
    log = tmp_path / "chunk_log.yaml"
    log.write_text(
        "chunk_log: \"$lambda e: open(f'" + str(tmp_path) + "/rank{dist.get_rank()}.txt', 'a').write("
        "''.join(f\\\"{int(b['chunk_round'])} {int(b['chunk_id'])}\\\\n\\\" for b in e.state.batch))\"\n"
        "run:\n  - $import ignite\n"
        "  - $@train#trainer.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED, @chunk_log)\n"
        "  - $@train#trainer.run()\n"
    )
    run_bundle(
        ["train.yaml", "multi_gpu_train.yaml", log], tmp_path, *TINY, "--synthetic_shape", "[16, 64, 64]",
        "--chunk_num", "[2, 1, 1]", "--chunk_iter", 2, "--batch_size", 1, "--epochs", 2, "--epoch_length", 3,
        "--val_sections", 4, torchrun=2,
    )  # fmt: skip
    reads = {}
    for rank in (0, 1):
        lines = (tmp_path / f"rank{rank}.txt").read_text().split()
        reads[rank] = {(int(r), int(c)) for r, c in zip(lines[::2], lines[1::2], strict=True)}
        assert len(lines) == 2 * 6  # 2 epochs x 3 iterations x batch 1 on each rank
    for rnd in {r for r, _ in reads[0] | reads[1]}:
        chunks0 = {c for r, c in reads[0] if r == rnd}
        chunks1 = {c for r, c in reads[1] if r == rnd}
        assert chunks0.isdisjoint(chunks1), f"round {rnd}: both ranks read chunks {chunks0 & chunks1}"
    assert (tmp_path / "models" / "model.pt").is_file()  # rank 0 validated and saved


def test_verify_metadata_offline(monkeypatch, tmp_path):
    import monai.apps.utils as apps_utils

    def no_network(*args, **kwargs):
        raise AssertionError("verify_metadata tried to download the schema")

    monkeypatch.setattr(apps_utils, "urlretrieve", no_network)
    verify_metadata(meta_file=str(META), filepath=str(SCHEMA))
    meta = ConfigParser.load_config_file(META)
    assert meta["required_packages_version"]["monai_em"]
    del meta["network_data_format"]
    bad = tmp_path / "metadata.json"
    ConfigParser.export_config_file(meta, str(bad))
    with pytest.raises(ValueError, match="network_data_format"):
        verify_metadata(meta_file=str(bad), filepath=str(SCHEMA))


def test_verify_net_in_out():
    verify_net_in_out(
        net_id="network_def", meta_file=str(META), config_file=str(CONFIGS / "train.yaml"), device="cpu"
    )


WORKFLOWS = [
    (["train.yaml"], "train"),
    (["inference.yaml"], "infer"),
    (["inference_2d.yaml"], "infer"),
    (["train.yaml", "evaluate.yaml"], "infer"),  # the model-zoo layout: evaluate.yaml merged over train.yaml
]


@pytest.mark.parametrize("configs, kind", WORKFLOWS, ids=lambda v: "+".join(v) if isinstance(v, list) else v)
def test_workflows_pass_monai_check_properties(configs, kind, trained, tmp_path):
    if not all((CONFIGS / c).is_file() for c in configs):
        pytest.skip(f"{configs} not in this bundle yet")
    root = trained
    if configs == ["inference_2d.yaml"]:  # needs a 2D checkpoint: the 2D spec of inference_2d.yaml, untrained
        root = tmp_path
        parser = ConfigParser()
        parser.read_config(CONFIGS / "inference_2d.yaml")
        (root / "models").mkdir()
        torch.save(parser.get_parsed_content("network_def").state_dict(), root / "models" / "model_2d.pt")
    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / c) for c in configs], meta_file=str(META), workflow_type=kind,
        bundle_root=str(root), input_size=[4, 32, 32], synthetic_shape=list(SHAPE), image_list=[str(tmp_path / "section.png")],
    )  # fmt: skip
    from monai.data.meta_obj import get_track_meta, set_track_meta

    track = get_track_meta()
    try:
        workflow.initialize()  # runs the config's `initialize` here: it switches meta tracking off
        assert workflow.check_properties() == []
    finally:
        set_track_meta(track)  # leave this process as it was for the tests after this one


def test_lr_schedule_ids_drive_the_trainer(tmp_path):
    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.yaml")
    parser.update({"bundle_root": str(tmp_path), "learning_rate": 0.01, "lr_scheduler": "multistep", "lr_steps": [2, 4], "lr_gamma": 0.5,
                   "warmup_iters": 2, "synthetic_shape": list(SHAPE), "input_size": [4, 32, 32]})  # fmt: skip
    handlers = parser.get_parsed_content("train#handlers")
    schedule = parser.get_parsed_content("lr_schedule")
    assert any(getattr(h, "lr_scheduler", None) is schedule for h in handlers)  # stepped every iteration
    optimizer = parser.get_parsed_content("optimizer")
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        schedule.step()
    # PyTC's WarmupMultiStepLR: linear warmup from 0.001 x, then x0.5 at iterations 2 and 4
    expected = [0.01 * 0.001, 0.01 * (0.001 * 0.5 + 0.5), 0.005, 0.005, 0.0025, 0.0025]
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)


def test_fine_tune_from_pretrained_weights(trained, tmp_path):
    best = trained / "models" / "model.pt"
    run_bundle(
        ["train.yaml"], tmp_path, *TINY, "--pretrained", best, "--learning_rate", 0.0, "--synthetic_shape",
        list(SHAPE), "--val_sections", 0, "--epochs", 1, "--epoch_length", 1, "--batch_size", 1,
    )  # fmt: skip
    start, after = read_checkpoint(best), read_checkpoint(tmp_path / "models" / "final_model.pt")
    assert after["train_settings"]["pretrained"] == str(best)
    for key, value in start["model"].items():  # learning rate 0: the run kept exactly the given weights
        assert torch.equal(after["model"][key], value), key
    # no validation ran (val_sections 0): model.pt is still written, the last weights with their network
    fallback = read_checkpoint(tmp_path / "models" / "model.pt")
    assert fallback["network"] == after["network"] and fallback["network"]["args"]["filters"] == [
        4,
        8,
        16,
        32,
    ]
    assert all(torch.equal(fallback["model"][k], v) for k, v in after["model"].items())


def test_pretrained_with_another_network_names_the_difference(trained, tmp_path):
    from monai_em.training import load_weights

    parser = ConfigParser()
    parser.read_config(CONFIGS / "train.yaml")
    parser["net_filters"] = [8, 16, 32, 64]
    with pytest.raises(ValueError, match=r"filters.*\[4, 8, 16, 32\], \[8, 16, 32, 64\]"):
        load_weights(parser.get_parsed_content("network_def"), trained / "models" / "model.pt",
                     parser.get_parsed_content("network_spec"))  # fmt: skip
