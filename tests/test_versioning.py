"""Versioned results and incremental reruns (issue 7), checked on a tiny copy of the project.

The tiny project is this repository's Snakefile, rules, schemas, profile, sources, README and dvc.yaml with a
small config (three alignment methods, two studies, two MLLM regimes). Every job's outputs start as
placeholders (the embeddings as small real arrays) and `snakemake --touch --forceall` records them as one
complete run, provenance included. The incremental checks read Snakemake's own rerun plan (a dry run) and
compare it with the DAG, so a rule that misses a params, code or input dependency, or one that depends on
too much, fails them. Only the killed-run test (alignment) and the DVC tests (gap statistics) run jobs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import PROJECT_ROOT

BIN = Path(sys.executable).parent
PROFILE = "workflow/profiles/default"
ALIGN_RULES = ("align_method", "align_study", "align_report")
ENC, DS = "lit-effnet-minilm", "embedded"  # the default config's run, so dvc.yaml's paths apply as they are
DIM = 16


# --- Snakemake plumbing ------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    # Rules call `modgap`, dvc.yaml calls `snakemake`, restore calls both: all from this venv. No network:
    # DVC would otherwise report usage analytics from a background process.
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "GIT_TERMINAL_PROMPT": "0", "DVC_NO_ANALYTICS": "1"}


def _run(cwd: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, env=_env(), check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"`{' '.join(command)}` failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def _snakemake(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(project, str(BIN / "snakemake"), "--profile", PROFILE, *args, check=check)


@dataclass(frozen=True)
class Job:
    rule: str
    wildcards: tuple[tuple[str, str], ...] = ()
    inputs: tuple[str, ...] = field(default=(), compare=False)
    outputs: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return self.rule + ("[" + ",".join(f"{k}={v}" for k, v in self.wildcards) + "]" if self.wildcards else "")

    def wildcard(self, name: str) -> str | None:
        return dict(self.wildcards).get(name)


_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_FIELD = re.compile(r"^    (\w+): (.*)$")


def _wildcards(text: str) -> tuple[tuple[str, str], ...]:
    """`enc=a, ds=b` (a job's `wildcards:` line) as ((enc, a), (ds, b))."""
    pairs = [item.split("=", 1) for item in text.split(", ") if "=" in item]
    return tuple((key, value) for key, value in pairs)


def parse_dry_run(text: str) -> list[Job]:
    """The jobs a `snakemake -n` printed, checked against its own job count."""
    jobs: list[Job] = []
    block: dict[str, str] | None = None

    def close() -> None:
        if block is not None:
            jobs.append(
                Job(
                    block["rule"],
                    _wildcards(block.get("wildcards", "")),
                    tuple(p for p in block.get("input", "").split(", ") if p),
                    tuple(p for p in block.get("output", "").split(", ") if p),
                )
            )

    for line in text.splitlines():
        if match := _RULE.match(line):
            close()
            block = {"rule": match.group(1)}
        elif block is not None and (match := _FIELD.match(line)):
            block[match.group(1)] = match.group(2)
        elif block is not None and not line.startswith(" "):
            close()
            block = None
    close()
    total = re.search(r"^total\s+(\d+)$", text, re.MULTILINE)
    if total is None:
        assert "Nothing to be done" in text, f"unreadable dry run:\n{text}"
        assert not jobs
    else:
        assert len(jobs) == int(total.group(1)), f"parsed {len(jobs)} jobs, Snakemake planned {total.group(1)}"
    return jobs


def plan(project: Path, *targets: str) -> set[str]:
    """What Snakemake would (re)run now, as `rule[wildcards]` labels; the `all` rule is left out."""
    result = _snakemake(project, "-n", *targets)
    return {str(job) for job in parse_dry_run(result.stdout + result.stderr) if job.rule != "all"}


def dag(project: Path) -> list[Job]:
    result = _snakemake(project, "-n", "--forceall")
    return parse_dry_run(result.stdout + result.stderr)


def downstream(jobs: list[Job], roots: Iterable[Job]) -> set[Job]:
    """Every job that consumes (transitively) an output of one of `roots`."""
    producers = {out: job for job in jobs for out in job.outputs}
    children: dict[Job, set[Job]] = {job: set() for job in jobs}
    for job in jobs:
        for path in job.inputs:
            if path in producers:
                children[producers[path]].add(job)
    seen: set[Job] = set()
    stack = list(roots)
    while stack:
        for child in children[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


# --- the tiny project -------------------------------------------------------------------------------------


def tiny_config() -> dict:
    """The real default config (so new sections come along) with a small alignment and MLLM part."""
    config = yaml.safe_load((PROJECT_ROOT / "config" / "config.yaml").read_text())
    config["gap"]["dynamics"]["datasets"] = []  # its figure needs a trained dual encoder; not needed here
    config["gap"]["params"] = {"phantom_mc": 2000, "random_draws": 3, "mixing_shuffles": 3}  # seconds, not minutes
    config["align"]["methods"] = {"identity": {}, "realign": {}, "blockwise": {}}
    config["align"]["studies"] = {"sample_size": {"sizes": [20, 40], "seeds": 2}, "precision": {"n": 200}}
    # One regime trains on ReAlign substitutes (downstream of alignment), one does not.
    config["mllm"]["regimes"] = {
        "revision-realign": {"stage1": "realign", "stage2": "image"},
        "no-stage1": {"stage1": None, "stage2": "image"},
    }
    return config


def _unit_rows(n: int, seed: int, offset_axis: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)) * np.linspace(1.5, 0.1, DIM)
    x[:, offset_axis] += 2.5  # a modality offset: a real gap for the alignment and gap rules to measure
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _write_placeholder(project: Path, job: Job) -> None:
    """Stand-in outputs of one job; embeddings are real arrays, so the rules after them can really run."""
    split = job.wildcard("split") or ""
    n = 300 if split == "stats" else 80
    for out in job.outputs:
        path = project / out
        if not path.suffix:  # a directory() output (every file output of this workflow has a suffix)
            path.mkdir(parents=True, exist_ok=True)
            (path / "placeholder.txt").write_text("placeholder\n")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if job.rule == "extract_embeddings" and path.suffix == ".npy":
            image = path.name == "image.npy"
            np.save(path, _unit_rows(n, seed=len(split) * 2 + image, offset_axis=0 if image else 1))
        elif job.rule == "extract_embeddings" and path.name.endswith("_ids.txt"):
            # stats is unpaired: its image half and text half come from different items
            shift = 10_000 if split == "stats" and path.name.startswith("text") else 0
            path.write_text("".join(f"{split}-{i + shift}\n" for i in range(n)))
        else:
            path.write_text("{}\n" if path.suffix == ".json" else "placeholder\n")


def build_tiny_project(root: Path) -> list[Job]:
    """Copy the workflow into `root` and fake a complete run of the tiny config; return its jobs.

    `snakemake --touch --forceall` stamps the placeholders in DAG order and records each job's params,
    code and input provenance exactly as a real run would, so the rerun triggers under test are live.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    root.mkdir(parents=True)
    for name in ("dvc.yaml", "README.md", ".gitignore", ".dvcignore"):
        shutil.copy2(PROJECT_ROOT / name, root / name)
    shutil.copytree(PROJECT_ROOT / "workflow", root / "workflow", ignore=ignore)
    shutil.copytree(PROJECT_ROOT / "src" / "modgap", root / "src" / "modgap", ignore=ignore)
    (root / "config").mkdir()
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    (root / "data" / "embedded").mkdir(parents=True)  # a dvc.yaml dependency; the data rule is a placeholder
    (root / "data" / "embedded" / "README.md").write_text("placeholder\n")

    jobs = [job for job in dag(root) if job.rule != "all"]
    for job in jobs:
        _write_placeholder(root, job)
    _snakemake(root, "--touch", "--forceall", "--cores", "1", "--quiet", "all")
    return jobs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, list[Job]]:
    root = tmp_path_factory.mktemp("tiny") / "project"
    # No separate up-to-date check here: test_touching_readme_reruns_nothing is that check.
    return root, build_tiny_project(root)


@pytest.fixture
def tiny_dag(tiny) -> list[Job]:
    return tiny[1]


def _copy(src: Path, dst: Path) -> Path:
    """A private copy of a project; copy2 keeps the mtimes, and .snakemake/ holds the provenance."""
    return Path(shutil.copytree(src, dst, symlinks=True))


@pytest.fixture
def project(tiny, tmp_path: Path) -> Path:
    return _copy(tiny[0], tmp_path / "project")


def _job(jobs: list[Job], rule: str, **wildcards: str) -> Job:
    found = [j for j in jobs if j.rule == rule and all(j.wildcard(k) == v for k, v in wildcards.items())]
    assert len(found) == 1, f"{rule} {wildcards}: {found}"
    return found[0]


def _set_config(project: Path, edit: Callable[[dict], object]) -> None:
    path = project / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


# --- incremental semantics --------------------------------------------------------------------------------


def test_alignment_hyperparameter_reruns_only_that_method_and_its_downstream(project, tiny_dag):
    _set_config(project, lambda c: c["align"]["methods"]["realign"].update(float32_means=True))
    realign = _job(tiny_dag, "align_method", method="realign")
    expected = {str(realign)} | {str(job) for job in downstream(tiny_dag, [realign])}
    assert plan(project) == expected
    # What that means concretely: the report and ReAlign's MLLM training, nothing else.
    assert {"align_report", "mllm_stage1"} <= {label.split("[")[0] for label in expected}
    stage1 = {j.wildcard("source") for j in tiny_dag if j.rule == "mllm_stage1" and str(j) in expected}
    assert stage1 == {"realign"}
    assert not any(
        j.rule == "align_method" and j.wildcard("method") != "realign" and str(j) in expected for j in tiny_dag
    )


def test_editing_alignment_source_reruns_alignment_and_downstream_only(project, tiny_dag):
    source = project / "src" / "modgap" / "align" / "registry.py"
    source.write_text(source.read_text() + "\n# an edit\n")
    align_jobs = [job for job in tiny_dag if job.rule in ALIGN_RULES]
    expected = {str(job) for job in align_jobs} | {str(job) for job in downstream(tiny_dag, align_jobs)}
    assert plan(project) == expected
    rules = {label.split("[")[0] for label in expected}
    assert {"extract_embeddings", "gap_stats", "prepare_dataset", "train_encoder"}.isdisjoint(rules)
    assert not any(
        j.rule == "mllm_stage2" and j.wildcard("regime") == "no-stage1" and str(j) in expected for j in tiny_dag
    )


def test_touching_readme_reruns_nothing(project):
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nAn edit.\n")
    assert plan(project) == set()


def _kill_mid_run(project: Path, targets: list[str]) -> tuple[set[str], str]:
    """Run the targets one job at a time; SIGKILL Snakemake and its job while the second job runs.

    Returns the labels of the jobs Snakemake reported finished, and its output.
    """
    process = subprocess.Popen(
        [str(BIN / "snakemake"), "--profile", PROFILE, "--cores", "1", "--printshellcmds", *targets],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        start_new_session=True,  # its own process group, so the kill reaches the running job too
    )
    watchdog = threading.Timer(300, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    lines: list[str] = []
    labels: dict[str, str] = {}
    finished: set[str] = set()
    block: dict[str, str] = {}
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if match := _RULE.match(line.rstrip()):
                block = {"rule": match.group(1)}
            elif (match := _FIELD.match(line.rstrip())) and match.group(1) in ("jobid", "wildcards"):
                block[match.group(1)] = match.group(2)
            elif line.startswith("Shell command:") and "jobid" in block:  # a job is starting
                labels[block["jobid"]] = str(Job(block["rule"], _wildcards(block.get("wildcards", ""))))
                if finished:
                    time.sleep(0.5)  # let its command start (a job here takes seconds: it is killed mid-way)
                    os.killpg(process.pid, signal.SIGKILL)
                    break
            elif match := re.match(r"Finished jobid: (\d+)", line):
                finished.add(labels[match.group(1)])
    finally:
        watchdog.cancel()
        process.wait()
    return finished, "".join(lines)


def test_killed_run_resumes_without_redoing_finished_jobs(project, tiny_dag):
    # An alignment source edit makes the methods stale; run two of them and kill the run during the second.
    source = project / "src" / "modgap" / "align" / "registry.py"
    source.write_text(source.read_text() + "\n# an edit\n")
    methods = [job for job in tiny_dag if job.rule == "align_method" and job.wildcard("method") != "realign"]
    targets = [out for job in methods for out in job.outputs if out.endswith("diagnostics.json")]
    finished, log = _kill_mid_run(project, targets)
    assert len(finished) == 1, log
    done = next(job for job in methods if str(job) in finished)
    killed = next(job for job in methods if str(job) not in finished)
    done_mtimes = {out: (project / out).stat().st_mtime_ns for out in done.outputs}

    # A SIGKILLed Snakemake leaves its lock behind: `snakemake --unlock` (README), then the same command,
    # which runs exactly the killed job.
    _snakemake(project, "--unlock")
    resumed = _snakemake(project, "--cores", "1", *targets)
    assert {str(job) for job in parse_dry_run(resumed.stdout + resumed.stderr)} == {str(killed)}
    assert {out: (project / out).stat().st_mtime_ns for out in done.outputs} == done_mtimes


# --- DVC: experiments, metrics and plots diffs, push and restore ------------------------------------------


def _git(repo: Path, *args: str) -> str:
    identity = ("-c", "user.name=modgap-test", "-c", "user.email=test@modgap.invalid", "-c", "commit.gpgsign=false")
    return _run(repo, "git", *identity, *args).stdout


def _dvc(repo: Path, *args: str) -> str:
    return _run(repo, str(BIN / "dvc"), *args).stdout


# README "Versioning results": the columns `dvc exp show` keeps for the headline numbers.
HEADLINE = r"Experiment|Created|.*i2t_R@1$|.*marginal\.G_mu$|.*methods\.(realign|anisoalign)\.delta_mu$"
GAP_STATS = f"results/gap/{ENC}/{DS}/stats.json"


def dvc_history(tiny_root: Path, root: Path) -> dict[str, str]:
    """The README's DVC commands, in order, on a git + DVC copy of the tiny project; returns what they print.

    No MLLM regimes here: `dvc exp run` really runs what a change makes stale (the gap rules, on the tiny
    embeddings), and nothing may need a trained model.
    """
    out: dict[str, str] = {}
    repo = _copy(tiny_root, root / "repo")
    _set_config(repo, lambda c: c["mllm"].update(regimes={}))
    _git(repo, "init", "-q", "-b", "main")
    _dvc(repo, "init", "-q")
    _dvc(repo, "remote", "add", "-d", "local", str(root / "storage"))
    # Runs the stage's `snakemake` (which would fail if it had anything to do) and records dvc.lock.
    _dvc(repo, "repro", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "baseline")
    _dvc(repo, "push", "-q")
    out["baseline_gap_stats"] = (repo / GAP_STATS).read_text()
    clone = root / "clone"
    _run(root, "git", "clone", "-q", str(repo), str(clone))
    out["clone_before"] = str((clone / GAP_STATS).exists())
    # The fresh clone restores from the remote while the experiment runs in the original (separate folders).
    with ThreadPoolExecutor(max_workers=1) as pool:
        restored = pool.submit(_restore_clone, clone)
        out |= _experiment(repo)
        out |= restored.result()
    return out


def _restore_clone(clone: Path) -> dict[str, str]:
    return {
        "restore": _run(clone, str(BIN / "modgap"), "workflow", "restore", "--pull").stdout,
        "restore_gap_stats": (clone / GAP_STATS).read_text(),
        "restore_status": _dvc(clone, "status", "--json"),
    }


def _experiment(repo: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    # `+` adds a key the file does not have yet.
    _dvc(repo, "exp", "run", "-q", "-S", "config/config.yaml:+gap.params.knn_k=5")
    out["exp_config"] = (repo / "config" / "config.yaml").read_text()
    out["exp_show"] = _dvc(repo, "exp", "show", "--csv", "--drop", ".*", "--keep", HEADLINE)
    out["exp_changed"] = _dvc(repo, "exp", "show", "--csv", "--only-changed")
    out["metrics_diff"] = _dvc(repo, "metrics", "diff", "--json")
    name = next(row.split(",")[0] for row in out["exp_show"].splitlines()[1:] if row.split(",")[0])
    out["metrics_diff_revs"] = _dvc(repo, "metrics", "diff", "main", name, "--json")
    out["plots_diff"] = _dvc(repo, "plots", "diff", "HEAD", "--json", "-o", "dvc_plots")
    out["plots_show"] = _dvc(repo, "plots", "show", "--json", "-o", "dvc_plots")

    # Back to the committed results: git restores the small files, restore the cached ones, nothing reruns.
    _git(repo, "checkout", "-q", "--", "config/config.yaml", "dvc.lock", "results")
    out["back"] = _run(repo, str(BIN / "modgap"), "workflow", "restore").stdout
    out["back_gap_stats"] = (repo / GAP_STATS).read_text()
    out["back_status"] = _dvc(repo, "status", "--json")
    return out


class _Background(threading.Thread):
    """`dvc_history` in a thread: it overlaps the incremental tests instead of following them."""

    def __init__(self, tiny_root: Path, root: Path) -> None:
        super().__init__(daemon=True)
        self.args_ = (tiny_root, root)
        self.output: dict[str, str] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.output = dvc_history(*self.args_)
        except BaseException as exc:  # re-raised in the tests that read the output
            self.error = exc

    def result(self) -> dict[str, str]:
        self.join(timeout=600)
        if self.error is not None:
            raise self.error
        assert self.output is not None, "the DVC history did not finish in 10 min"
        return self.output


@pytest.fixture(scope="module")
def history_run(tiny, tmp_path_factory) -> Iterator[_Background]:
    thread = _Background(tiny[0], tmp_path_factory.mktemp("dvc"))
    thread.start()
    yield thread
    thread.join(timeout=600)


@pytest.fixture(scope="module", autouse=True)
def _start_history_early(request) -> None:
    # Start the DVC history with the module's first test when any selected test reads it.
    if any("history" in item.fixturenames for item in request.session.items if item.module is request.module):
        request.getfixturevalue("history_run")


@pytest.fixture
def history(history_run: _Background) -> dict[str, str]:
    return history_run.result()


def test_dvc_exp_run_is_an_experiment_with_headline_metrics(history):
    assert yaml.safe_load(history["exp_config"])["gap"]["params"]["knn_k"] == 5
    # The README's headline view: one row per version, here the workspace, the baseline and the experiment.
    table = history["exp_show"].splitlines()
    assert table[0] == f"Experiment,Created,{ENC}.{DS}.marginal.G_mu", table
    (_, baseline, experiment) = (row.split(",") for row in table[1:])
    assert experiment[0] and float(experiment[2]) > 0 and baseline[2] == "", table  # baseline: placeholder
    # --only-changed: the param that differs, and the metrics that moved, but not what stayed put
    columns = history["exp_changed"].splitlines()[0].split(",")
    assert "gap.params.knn_k" in columns and f"{ENC}.{DS}.marginal.G_mu" in columns
    assert "seed" not in columns and "gap.params.phantom_mc" not in columns


def test_metrics_diff_shows_only_what_the_experiment_reran(history):
    # `dvc exp run` leaves the experiment in the workspace; `dvc metrics diff` compares it with HEAD.
    # Only the gap stage reran: the encoder and alignment metrics (placeholders here) did not move.
    diff = json.loads(history["metrics_diff"])
    assert set(diff) == {"results/metrics/gap.json"}, diff
    assert diff["results/metrics/gap.json"][f"{ENC}.{DS}.transforms.knn_k"]["new"] == 5
    assert json.loads(history["metrics_diff_revs"]) == diff  # the same, naming the baseline and the experiment


def test_plots_diff_shows_both_versions(history):
    shown = json.loads(history["plots_diff"])["data"]
    redrawn = f"results/figures/gap_aa_fig1_{ENC}_{DS}.png"
    untouched = f"results/figures/align/{ENC}/{DS}/aniso_semantics.png"
    for figure in (redrawn, untouched):
        assert {rev for plot in shown[figure] for rev in plot["revisions"]} == {"HEAD", "workspace"}, figure
    series = shown["gap_transforms_phi"][0]  # the baseline's table is a placeholder, so one revision
    assert series["type"] == "vega" and series["revisions"] == ["workspace"]
    assert {row["transform"] for row in series["content"]["data"]["values"]} >= {"identity", "centroid"}
    current = json.loads(history["plots_show"])["data"]
    assert {rev for plot in current[redrawn] for rev in plot["revisions"]} == {"workspace"}


def test_back_to_committed_results_recomputes_nothing(history):
    assert "nothing to do" in history["back"]  # restore itself fails unless `snakemake -n` is empty after it
    assert history["back_gap_stats"] == history["baseline_gap_stats"]
    assert json.loads(history["back_status"]) == {}


def test_restore_in_a_fresh_clone_recomputes_nothing(history):
    assert history["clone_before"] == "False"
    assert "nothing to do" in history["restore"]
    assert history["restore_gap_stats"] == history["baseline_gap_stats"]
    assert json.loads(history["restore_status"]) == {}  # what was pulled is what dvc.lock records


# --- the README's commands and the real config ----------------------------------------------------------


def test_every_key_of_the_real_config_can_be_set_by_dvc_exp_run(tmp_path):
    from dvc.utils.hydra import apply_overrides

    # DVC writes -S values back through YAML: a key reached through an alias (*anchor) is silently reset.
    tokens = yaml.scan((PROJECT_ROOT / "config" / "config.yaml").read_text())
    assert not any(isinstance(t, yaml.AliasToken | yaml.AnchorToken) for t in tokens)

    # DVC's own -S code, with the README's two forms: exactly the two keys change.
    config = tmp_path / "config.yaml"
    shutil.copy(PROJECT_ROOT / "config" / "config.yaml", config)
    expected = yaml.safe_load(config.read_text())
    expected["align"]["methods"]["anisoalign"]["stage1_steps"] = 500
    expected["align"]["methods"]["c3"]["sigma"] = 0.2
    apply_overrides(config, ["align.methods.anisoalign.stage1_steps=500", "+align.methods.c3.sigma=0.2"])
    assert yaml.safe_load(config.read_text()) == expected


def test_readme_shows_the_tested_commands():
    readme = (PROJECT_ROOT / "README.md").read_text()
    for command in (
        f"dvc exp show --md --drop '.*' --keep '{HEADLINE}'",
        "dvc exp run -S config/config.yaml:align.methods.anisoalign.stage1_steps=500",
        "dvc exp run -S 'config/config.yaml:+align.methods.c3.sigma=0.2'",
        "git checkout -- config/config.yaml dvc.lock results && modgap workflow restore",
        "modgap workflow restore --pull",
        "snakemake --unlock",
    ):
        assert command in readme, command


def test_headline_columns_exist_in_the_committed_metrics():
    from dvc.utils.flatten import flatten

    # `dvc exp show` names a metric column by its flattened key (the file only on a clash).
    columns = set()
    for path in (PROJECT_ROOT / "results" / "metrics").rglob("*.json"):
        columns |= set(flatten(json.loads(path.read_text())))
    headline = {c for c in columns if re.match(HEADLINE, c)}
    for suffix in ("i2t_R@1", "marginal.G_mu", "methods.realign.delta_mu", "methods.anisoalign.delta_mu"):
        assert any(c.endswith(suffix) for c in headline), suffix


def test_html_report_collects_figures_tables_and_claims(project):
    # The report is built from the run's recorded provenance, so the touch-recorded tiny run is enough.
    _snakemake(project, "--report", "report.html", "--cores", "1")
    html = (project / "report.html").read_text(errors="replace")
    for category in ("Encoder", "Gap theory", "Alignment", "Evaluation", "Claims"):
        assert category in html, category
    for name in ("gap_aa_fig1_", "align_metrics.csv", "aniso_semantics.png", "eval_summary.png", "claims.md"):
        assert name in html, name
