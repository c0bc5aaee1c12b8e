"""monai_em.training: PyTC's learning-rate schedules and self-describing checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from monai_em.training import LRFactor, Record, build_network, load_weights, lr_schedule, read_checkpoint

SPEC = {
    "class": "DynUNet",
    "args": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "kernel_size": [3, 3, 3], "strides": [1, 2, 2],
             "upsample_kernel_size": [2, 2], "filters": [4, 8, 16]},
}  # fmt: skip


def test_cosine_with_warmup_follows_pytc():
    f = LRFactor("cosine", total_iters=100, warmup_iters=10)
    assert f(0) == pytest.approx(0.001)  # warmup starts at warmup_factor
    assert f(5) == pytest.approx((0.001 * 0.5 + 0.5) * 0.5 * (1 + math.cos(math.pi * 5 / 100)))
    assert f(50) == pytest.approx(0.5)
    assert f(100) == pytest.approx(0.0, abs=1e-12) and f(150) == pytest.approx(0.0, abs=1e-12)


def test_constant_and_scheduler_steps_the_optimizer():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = lr_schedule(opt, "multistep", total_iters=10, steps=[1, 3], gamma=0.1)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1, 0.01, 0.01, 0.001])
    assert all(LRFactor("constant", 10)(i) == 1.0 for i in range(20))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "poly"}, "lr_scheduler must be one of"),
        ({"name": "multistep", "steps": [5, 2]}, "lr_steps must be increasing"),
        ({"name": "cosine", "total_iters": 0}, "total_iters >= 1"),
        ({"gamma": 0.0}, "lr_gamma > 0"),
    ],
)
def test_bad_schedule_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRFactor(**kwargs)


def test_checkpoint_round_trip_rebuilds_the_network(tmp_path):
    net = build_network(SPEC)
    path = tmp_path / "model.pt"
    torch.save(
        {"model": net.state_dict(), "network": Record(SPEC).state_dict(), "train_settings": {"seed": 0}}, path
    )
    ckpt = read_checkpoint(path)
    again = build_network(ckpt["network"])
    again.load_state_dict(ckpt["model"])
    x = torch.rand(1, 1, 8, 8)
    net.eval(), again.eval()
    assert torch.equal(net(x), again(x))
    torch.save(net.state_dict(), tmp_path / "bare.pt")  # a bare state_dict still loads, without a spec
    bare = read_checkpoint(tmp_path / "bare.pt")
    assert (
        bare["network"] is None and load_weights(build_network(SPEC), tmp_path / "bare.pt", SPEC) is not None
    )


def test_bad_spec_and_missing_file_are_named(tmp_path):
    with pytest.raises(ValueError, match="'NoSuchNet' not found"):
        build_network({"class": "NoSuchNet"})
    with pytest.raises(ValueError, match="a network spec is"):
        build_network({"args": {}})
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        read_checkpoint(tmp_path / "nowhere.pt")


def test_save_checkpoint_keeps_an_existing_best(tmp_path):
    from monai_em.training import save_checkpoint

    net = build_network(SPEC)
    path = tmp_path / "models" / "model.pt"
    contents = {"model": net, "network": Record(SPEC)}
    assert save_checkpoint(path, contents, overwrite=False)  # nothing there yet: the last weights
    first = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert not save_checkpoint(path, contents, overwrite=False)  # a best checkpoint stays as it is
    kept = read_checkpoint(path)
    assert kept["network"] == Record(SPEC).state_dict()
    assert all(torch.equal(kept["model"][k], v) for k, v in first.items())
    assert save_checkpoint(path, contents) and list(path.parent.iterdir()) == [path]  # no temp file left
