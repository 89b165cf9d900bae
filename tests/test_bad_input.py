"""Every kind of bad input, through the real command line: a one-line error naming the problem and the fix,
exit 2 for usage errors and 1 for runtime failures, no traceback, and the existing study untouched."""

import shutil

import optuna
import pytest
import yaml
from conftest import TINY_SPACE, fake_dataset

# the tiny_study fixture's own settings: with these, `nas search` would simply continue the study
SAME = ["--epochs", "1", "--subset", "0.01", "--val-size", "500", "--max-params", "1.2k", "--budgets", "none", "--jobs", "1"]


def space_file(tmp, change):
    raw = yaml.safe_load(open(TINY_SPACE).read()) if change else None
    path = tmp / "bad.yaml"
    if change == "syntax":
        path.write_text("family: resnet_like\narch:\n  stages: {low: 1, high: 2\n  dropout: 0\n")
    else:
        change(raw)
        path.write_text(yaml.safe_dump(raw))
    return str(path)


def data_dir(tmp, how):
    folder = fake_dataset(tmp / "data", n_train=60_000, n_test=100)
    target = folder / "train-images-idx3-ubyte.gz"
    if how == "missing":
        target.unlink()
    else:  # truncated: a file cut short, as an interrupted download leaves it
        import gzip

        raw = gzip.decompress(target.read_bytes())
        target.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return str(folder)


def search(tmp, storage, *extra, space=TINY_SPACE, trials="3"):
    return ["search", "--space", space, "--study", "t", "--storage", storage, "--trials", trials, *SAME, *extra]


CASES = {  # name: (argv from (tmp, storage), exit code, what the message must say)
    "unknown space": (lambda tmp, s: search(tmp, s, space="nope"), 2, "unknown space 'nope'"),
    "space YAML syntax error": (lambda tmp, s: search(tmp, s, space=space_file(tmp, "syntax")), 2,
                                "line 4: YAML syntax error"),
    "space unknown key": (lambda tmp, s: search(tmp, s, space=space_file(tmp, lambda r: r["arch"].update(colour=1))),
                          2, "arch.colour: unknown key"),
    "space empty choices": (lambda tmp, s: search(tmp, s, space=space_file(
        tmp, lambda r: r["arch"]["stage"].update(width={"choices": []}))), 2, "choices must be a non-empty list"),
    "space low > high": (lambda tmp, s: search(tmp, s, space=space_file(
        tmp, lambda r: r["arch"].update(stages={"low": 3, "high": 1}))), 2, "range has low > high (3 > 1)"),
    "space unknown block": (lambda tmp, s: search(tmp, s, space=space_file(
        tmp, lambda r: r["arch"]["stage"].update(block={"choices": ["transformer"]}))), 2, "unknown block 'transformer'"),
    "unknown objective": (lambda tmp, s: search(tmp, s, "--objectives", "accuracy,speed"), 2, "unknown objective 'speed'"),
    "malformed --max-params": (lambda tmp, s: search(tmp, s, "--max-params", "lots"), 2, "--max-params 'lots' is not"),
    "malformed --max-latency": (lambda tmp, s: search(tmp, s, "--max-latency", "1 week"), 2, "is not a duration"),
    "malformed --max-macs": (lambda tmp, s: search(tmp, s, "--max-macs", "3x"), 2, "--max-macs '3x' is not a count"),
    "limits nothing meets": (lambda tmp, s: ["search", "--space", TINY_SPACE, "--study", "hopeless", "--storage", s,
                                             "--trials", "2", "--max-params", "10", "--objectives", "accuracy,params"],
                             2, "no architecture of 200 random draws from space tiny fits --max-params 10"),
    "missing dataset": (lambda tmp, s: search(tmp, s, "--data-dir", data_dir(tmp, "missing")), 1,
                        "apt-get install dataset-fashion-mnist"),
    "truncated dataset": (lambda tmp, s: search(tmp, s, "--data-dir", data_dir(tmp, "truncated")), 1, "truncated"),
    "storage cannot be opened": (lambda tmp, s: search(tmp, "postgresql://nas:hunter2@127.0.0.1:1/nas"), 1,
                                 "cannot open storage postgresql://nas:***@127.0.0.1:1/nas"),
    "front: no such study": (lambda tmp, s: ["front", "--study", "nope", "--storage", s], 2, "no study 'nope'"),
    "plot: no such study": (lambda tmp, s: ["plot", "--study", "nope", "--storage", s], 2, "no study 'nope'"),
    "export: no such study": (lambda tmp, s: ["export", "--study", "nope", "--storage", s], 2, "no study 'nope'"),
    "dashboard: no such study": (lambda tmp, s: ["dashboard", "--study", "nope", "--storage", s], 2, "no study 'nope'"),
    "changed settings": (lambda tmp, s: search(tmp, s, "--epochs", "2"), 2, "was created with other settings"),
    "export: absent trial": (lambda tmp, s: ["export", "--study", "t", "--storage", s, "--trial", "999"], 2,
                             "has no trial 999"),
    "export: infeasible trial": (lambda tmp, s: ["export", "--study", "t", "--storage", s, "--trial", "0"], 2,
                                 "is infeasible"),
    "export: bad --augment": (lambda tmp, s: ["export", "--study", "t", "--storage", s, "--augment", "crop=two"], 2,
                              "--augment 'crop=two': expected e.g. crop=2,flip=1,cutout=8"),
    "storage folder cannot be made": (lambda tmp, s: search(tmp, f"sqlite:///{tmp}/t.db/sub/x.db"), 2,
                                      "cannot make the folder"),
    "export: no database file": (lambda tmp, s: ["export", "--study", "t", "--storage", f"sqlite:///{tmp}/x.db"], 2,
                                 "/x.db; run nas search --study t first"),
    "front: no database file": (lambda tmp, s: ["front", "--study", "t", "--storage", f"sqlite:///{tmp}/x.db"], 2,
                                "/x.db; run nas search --study t first"),
    "dashboard: port out of range": (lambda tmp, s: ["dashboard", "--study", "t", "--storage", s, "--port", "99999"],
                                     2, "--port 99999: a TCP port is between 1 and 65535"),
    "--trials 0": (lambda tmp, s: search(tmp, s, trials="0"), 2, "--trials 0: must be at least 1"),
    "--trials negative": (lambda tmp, s: search(tmp, s, trials="-3"), 2, "--trials -3: must be at least 1"),
}


def snapshot(storage):
    return [(t.number, t.state, t.values, t.user_attrs) for t in
            optuna.load_study(study_name="t", storage=storage).get_trials(deepcopy=False)]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, nas_cli, tiny_study, tmp_path):
    make_args, code, message = CASES[case]
    shutil.copy(tiny_study[0] / "t.db", tmp_path / "t.db")
    storage = f"sqlite:///{tmp_path}/t.db"
    assert optuna.load_study(study_name="t", storage=storage).trials[0].user_attrs["kind"] == "infeasible"
    before = snapshot(storage)
    out = nas_cli(*make_args(tmp_path, storage))
    assert out.returncode == code, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], out.stderr
    assert "Traceback" not in out.stderr and "hunter2" not in out.stderr
    assert "epoch 1/" not in out.stderr  # no progress bar is drawn for work that never starts
    assert snapshot(storage) == before
    assert not (tmp_path / "x.db").exists()  # reading creates nothing
