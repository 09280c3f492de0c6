"""`python -m crossgen.train all` on the committed emoji fixture with tiny settings: every stage trains,
logs, saves a loadable checkpoint, resumes, and the VAE gets its exemplar prior."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from crossgen.checkpoint import load_model
from crossgen.data import load_records
from crossgen.errors import UsageError
from crossgen.models.vae import CVAE, CVAEConfig
from crossgen.postprocess.skin_tone import RADII
from crossgen.serving.pipeline import Pipeline
from crossgen.train import CaptionerTrainConfig, FeatureTrainConfig
from crossgen.train.__main__ import RECIPES, config_for, main, recipe_for
from crossgen.train.captioner import THRESHOLDS
from crossgen.train.confidence import learned_styles
from crossgen.train.loop import run_epochs
from crossgen.train.vae import VAETrainConfig

from helpers import FIXTURE, ROOT

TINY = ["--data", str(FIXTURE), "--device", "cpu", "--limit", "48", "--epochs", "2", "--batch-size", "16",
        "--no-wordnet", "--vector-size", "16", "--latent-dim", "4", "--embed-dim", "16", "--hidden-dim", "32"]


@pytest.mark.slow
def test_train_all_on_fixture_then_resume(tmp_path: Path, capsys):
    out, work = tmp_path / "ckpt", tmp_path / "runs"
    main(["all", "--out", str(out), "--work", str(work), *TINY])
    for stage in ("features", "vae", "captioner"):
        rows = json.loads((out / "logs" / f"{stage}.json").read_text())
        assert [r["epoch"] for r in rows] == [1, 2] and all(r["train_loss"] > 0 for r in rows), stage
        assert (out / "logs" / f"{stage}.png").stat().st_size > 0 and (out / "logs" / f"{stage}.csv").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["training"]) == {"word2vec", "features", "vae", "captioner"}
    assert manifest["training"]["vae"]["config"]["latent_dim"] == 4
    assert {manifest["training"][s]["recipe"] for s in manifest["training"]} == {"quick"}  # auto on CPU
    # the captioner kept is the epoch naming the most validation drawings exactly (the first on a tie), not the lowest loss
    rows = json.loads((out / "logs" / "captioner.json").read_text())
    best = max(rows, key=lambda r: (r["val_exact"], -r["epoch"]))
    assert json.loads((out / "captioner.json").read_text())["train"]["epoch"] == best["epoch"]
    # the captioner stage chose the concept-head fallback's threshold on the validation slice
    fallback = json.loads((out / "concept_fallback.json").read_text())
    assert fallback["threshold"] in THRESHOLDS and set(fallback["val_exact"]) == {str(t) for t in THRESHOLDS}
    assert manifest["training"]["captioner"]["result"]["fallback"]["threshold"] == fallback["threshold"]
    assert "concept_fallback.json" in manifest["files"]
    # and fitted the skin-tone reader on the toned training images (--limit 48 keeps one artist: no
    # leave-one-artist-out choice, the middle radius)
    tones = json.loads((out / "skin_tone.json").read_text())
    assert len(tones["palette"]) == len(tones["tones"]) >= 2 and tones["radius"] == RADII[len(RADII) // 2]
    assert tones["loo_accuracy"] == {} and "skin_tone.json" in manifest["files"]
    assert isinstance(tones["pairs"], list)  # two-person concepts among the (limited) training names

    vae, meta = load_model(out, "vae", CVAE, CVAEConfig)
    n = vae.config.exemplars
    # the composing generator: the words read apart, exemplars found by object (their names' keys, 16-d here)
    assert n > 0 and vae.exemplar_z.shape == (n, 4) and vae.exemplar_name.shape == (n,)
    assert vae.name_object.shape == (vae.config.exemplar_names, 16)
    # the spread around an exemplar is measured from the posteriors, not left at the config default
    assert 0 < vae.config.exemplar_sd < 2 and vae.config.exemplar_sd != CVAEConfig.exemplar_sd
    # the stored latents were fitted from the posterior means and reconstruct their images better
    ex = meta["exemplars"]
    assert ex["count"] == n and ex["refine_steps"] == VAETrainConfig.refine_steps > 0
    assert ex["bce_stored"] < ex["bce_posterior_mean"]
    assert manifest["training"]["vae"]["result"]["exemplars"] == ex

    pipe = Pipeline.from_checkpoints(out, "cpu")
    word = next(w for w in ("face", "heart", "apple") if w in pipe.text_encoder.wv)
    images = pipe.text_to_image(word, n=2, seed=0)
    assert len(images) == 2 and images[0].size == (64, 64)
    assert pipe.image_to_text(next((FIXTURE / "images" / "twemoji").iterdir()))

    capsys.readouterr()
    main(["vae", "--out", str(out), "--work", str(work), *TINY])  # nothing left to train: resumes, keeps the weights
    assert "resumed after epoch 2" in capsys.readouterr().out
    assert len(json.loads((out / "logs" / "vae.json").read_text())) == 2
    assert torch.equal(load_model(out, "vae", CVAE, CVAEConfig)[0].exemplar_z, vae.exemplar_z)

    # the exemplars stage rebuilds only the table: --refine-steps 0 stores the posterior means
    main(["exemplars", "--out", str(out), "--work", str(work), *TINY, "--refine-steps", "0"])
    vae0, meta0 = load_model(out, "vae", CVAE, CVAEConfig)
    assert meta0["exemplars"]["refine_steps"] == 0
    assert meta0["exemplars"]["bce_stored"] == meta0["exemplars"]["bce_posterior_mean"] > ex["bce_stored"]
    assert vae0.exemplar_z.shape == vae.exemplar_z.shape and not torch.equal(vae0.exemplar_z, vae.exemplar_z)
    assert all(torch.equal(a, b) for a, b in zip(vae0.parameters(), vae.parameters()))  # weights untouched
    assert json.loads((out / "manifest.json").read_text())["training"]["exemplars"]["result"] == meta0["exemplars"]

    # the confidence stage on a later version of the dataset refits only confidence.json: the manifest keeps the
    # data the models were trained on and records the stage's own; the calibration keeps to the learned artists
    newer = tmp_path / "emoji_v2"
    shutil.copytree(FIXTURE, newer)
    build = json.loads((newer / "build.json").read_text())
    (newer / "build.json").write_text(json.dumps({**build, "split_version": 2}))
    before = json.loads((out / "manifest.json").read_text())
    main(["confidence", "--out", str(out), "--work", str(work), *TINY[2:6], "--data", str(newer)])
    after = json.loads((out / "manifest.json").read_text())
    assert after["data"] == before["data"] and after["training"]["confidence"]["data"]["split_version"] == 2
    assert {k: v for k, v in after["files"].items() if k != "confidence.json"} == \
        {k: v for k, v in before["files"].items() if k != "confidence.json"}
    fitted = json.loads((out / "confidence.json").read_text())
    assert fitted["calibration_artists"] == sorted(learned_styles(out)) and fitted["probe_artists"]


def test_recipes_change_stage_defaults_and_flags_win():
    none = argparse.Namespace()
    assert recipe_for("auto", torch.device("cpu")) == "quick" and recipe_for("auto", torch.device("cuda")) == "full"
    assert recipe_for("full", torch.device("cpu")) == "full"
    for name, stages in RECIPES.items():
        for stage, changes in stages.items():
            cfg = config_for(stage, none, name)
            assert all(getattr(cfg, k) == v for k, v in changes.items()), (name, stage)
    full, quick = config_for("features", none, "full"), config_for("features", none, "quick")
    assert full.epochs > quick.epochs and full.lr == quick.lr == FeatureTrainConfig.lr  # only what the recipe names
    assert config_for("captioner", none, "full").views > CaptionerTrainConfig.views
    assert config_for("features", argparse.Namespace(epochs=3), "full").epochs == 3  # a flag beats the recipe
    assert config_for("features", none).epochs == FeatureTrainConfig.epochs  # external sets: dataclass defaults


# VAETrainConfig fields deleted with the switch to the composing generator, at the value it was trained with
DELETED = {"prior": "standard", "prior_recon": 0.0, "words": True, "styles": False, "reference": False, "cond_drop": 0.0,
           "guidance": 1.0, "latent_prior": "", "exemplars": True}


def test_the_manifest_says_how_each_shipped_stage_was_trained():
    """Each stage's recorded config is what its recorded recipe and command-line flags give (records from before
    flags were recorded were trained with the full recipe and no flags; fields added since take their defaults)."""
    training = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())["training"]
    for stage in ("word2vec", "features", "vae", "captioner"):
        record = training[stage]
        recorded = record["config"]
        if stage == "vae" and "exemplars" in training:  # its exemplar table was rebuilt later by the exemplars stage
            recorded = {**recorded, **{k: training["exemplars"]["config"][k] for k in ("refine_steps", "refine_lr")}}
        flags = argparse.Namespace(**record.get("flags", {}))
        expected = dataclasses.asdict(config_for(stage, flags, record.get("recipe", "full")))
        # a field deleted since is in the record at the value the shipped design used; one added since is not in
        # it: it was trained with that field's default
        deleted = {k: v for k, v in recorded.items() if k not in expected}
        assert all(DELETED.get(k, ...) == v for k, v in deleted.items()), (stage, deleted)
        assert {k: v for k, v in recorded.items() if k in expected} == {k: expected[k] for k in recorded if k in expected}, stage


def test_exemplars_stage_is_for_the_emoji_set(tmp_path: Path):
    with pytest.raises(UsageError, match="exemplar table"):
        main(["exemplars", "--data", "coco", "--root", str(tmp_path), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_fine_tuning_starts_from_the_saved_backbone_and_matching_head_rows(tmp_path: Path):
    """--init: the backbone is the saved one; head rows follow the concept (and word) names, new ones stay fresh."""
    from crossgen import FeatureConfig, ImageFeatures, save_model
    from crossgen.train.features import start_from

    torch.manual_seed(0)
    old = ImageFeatures(FeatureConfig(num_classes=3, num_words=2))
    save_model(tmp_path, "features", old, concepts=["a", "b", "c"], words=["red", "apple"])
    torch.manual_seed(1)
    new = start_from(ImageFeatures(FeatureConfig(num_classes=3, num_words=2)), tmp_path,
                     {"b": 0, "d": 1, "a": 2}, {"apple": 0, "green": 1})
    assert torch.allclose(new.backbone.conv1.weight, old.backbone.conv1.weight)
    w_old, w_new = old.head[1].weight, new.head[1].weight
    assert torch.equal(w_new[0], w_old[1]) and torch.equal(w_new[2], w_old[0])
    assert not any(torch.equal(w_new[1], row) for row in w_old)  # "d" is new: its row keeps its fresh start
    assert torch.equal(new.word_head.weight[0], old.word_head.weight[1])


@pytest.mark.slow
def test_the_composing_generator_trains_and_finds_its_exemplars_by_object(tmp_path: Path):
    """The default vae stage: words apart, colour captions and swaps, then exemplars found by object, with the
    hold-out left out of Word2Vec, the VAE and its exemplars; one request draws n different exemplars."""
    from crossgen.data.holdout import held_out_ids

    out, work = tmp_path / "ckpt", tmp_path / "runs"
    main(["word2vec", "--out", str(out), "--work", str(work), *TINY])
    main(["vae", "--out", str(out), "--work", str(work), *TINY, "--refine-steps", "2"])
    vae, meta = load_model(out, "vae", CVAE, CVAEConfig, "cpu")
    assert meta["train"]["config"]["swap"] == 0.5 and meta["train"]["config"]["colour_aug"] == 0.3
    first = load_records(FIXTURE, split="train")[:48]  # --limit 48
    assert vae.config.exemplars == meta["exemplars"]["count"] == sum(r["id"] not in held_out_ids() for r in first)
    assert vae.config.exemplar_names > 0 and vae.name_object.dtype == torch.float32
    # each exemplar row names its training drawing and artist (credits), in the rows' order
    kept = [r for r in first if r["id"] not in held_out_ids()]
    sources = meta["sources"]
    assert sources["name"] == [r["name"] for r in kept]
    assert [sources["artists"][i] for i in sources["artist"]] == [r["style"] for r in kept]
    from crossgen import TextEncoder

    encoder = TextEncoder.load(out / "word2vec.bin")
    word = next(w for w in ("face", "heart", "hand") if w in encoder.wv)
    text = torch.from_numpy(encoder.encode(word).words.reshape(-1))
    eps = torch.randn(4, vae.config.latent_dim, generator=torch.Generator().manual_seed(0))
    picked = vae.nearest_by_object(eps, text[None].repeat(4, 1), vae.request_slots(eps))
    assert len(set(picked.tolist())) == 4
    a = vae.sample(text, n=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, vae.sample(text, n=4, generator=torch.Generator().manual_seed(0)))


def test_a_run_that_starts_over_starts_its_log_over(tmp_path: Path):
    """The per-epoch log continues only with the training state it belongs to: a new run into a folder that holds an
    older run's log (its state gone) replaces that log, where it used to append to it."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def run(epochs: int, work: Path) -> list[dict]:
        run_epochs("toy", model, opt, None, epochs, lambda e: {"train_loss": 1.0 / e}, lambda: {"val_loss": 0.5},
                   lambda row: None, work, tmp_path / "logs")
        return json.loads((tmp_path / "logs" / "toy.json").read_text())

    assert [r["epoch"] for r in run(2, tmp_path / "a")] == [1, 2]
    assert [r["epoch"] for r in run(3, tmp_path / "a")] == [1, 2, 3]  # resumed: the log goes on
    assert [r["epoch"] for r in run(2, tmp_path / "b")] == [1, 2]  # no state in b: a new run, a new log
