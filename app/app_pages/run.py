"""One run (`?run=ID`): live charts, few-shot evaluation and the held-out feature space, reconstructions, config
and lint, divergence report, output; stop, resume, clone, and pin any figure to a note."""

import json
from pathlib import Path

import numpy as np
import streamlit as st

from app.charts import (chart_png, feature_figure, few_shot_figure, histogram_figure, interval_table,
                         metric_groups)
from app.identity import author_in_words, current_person, sign_in_is_on
from app.literal import literal, literal_code
from app.live_chart import live_chart
from app.pinning import pin_popover
from app.script_view import command_fact, draw_flat_config, draw_images_and_text, is_own_code
from app.services import open_notebook, run_id_from
from app.widgets import page_is_visible, show_image
from engine import jobs
from lab_notes import IMAGES_PER_S, RESUMABLE_STATUSES, Figure, NotFound, Refused, downsample, may_change

MASKED = "_masked"  # the suffix of training accuracies measured on masked views (engine.train.step_scalars)
MAX_POINTS = 1000  # per series on screen; the server downsamples longer ones keeping min, max and last
LIVE_STATUSES = ("queued", "running")
# Redrawn each second while the run is live: what a person watches a run for. The rest (norms, learning rate,
# throughput, held-out evaluation, system) every 5 s: each tab open on a run costs the run's cores some work.
TRAINING_CHARTS = {"Losses", "Accuracy"}
SPEED_KEYS = {IMAGES_PER_S, "perf/tflops", "perf/mfu"}  # what the Speed line shows

notebook = open_notebook()
run_id = run_id_from(st.query_params.get("run"))
if run_id is None:
    names = notebook.run_names()
    if not names:
        st.info("No runs yet.")
        st.page_link("app_pages/new_run.py", label="Launch a run", icon="🚀")
        st.stop()
    picked = st.selectbox("Run", list(names), format_func=lambda i: f"{i} · {names[i]}")  # the latest first
    st.query_params["run"] = str(picked)
    run_id = picked
try:
    run = notebook.get_run(run_id)
except NotFound:
    st.error(f"There is no run {run_id}.")
    st.page_link("app_pages/runs.py", label="All runs", icon="📋")
    st.stop()

BADGES = {"queued": "⏳", "running": "🟢", "completed": "✅", "stopped": "⏹️", "diverged": "💥", "failed": "❌"}
if run.status == "deleted":
    st.warning(f"Run {run.id} ({literal(run.name)}) was deleted, with its metrics, images and checkpoints; notes that "
               "mention it stay.")
    st.page_link("app_pages/runs.py", label="All runs", icon="📋")
    st.stop()
st.title(f"Run {run.id} — {literal(run.name)}")
status_text = "stopping" if run.status == "running" and run.stop_requested else run.status
command = command_fact(run)
facts = [f"{BADGES.get(run.status, '')} **{status_text}**", command or f"preset {literal_code(run.preset or '—')}"]
if run.device or command is None:  # a script's device is the script's business: named only when it told us
    facts.append(f"device {literal(run.device or '—')}")
if sign_in_is_on():
    facts.append(f"by {literal(author_in_words(run.owner))}")
if run.placement_in_words:
    facts.append(literal(run.placement_in_words))
if run.parent_id:
    facts.append(f"cloned from [run {run.parent_id}](/run?run={run.parent_id})")
if run.attempt > 1:
    facts.append(f"attempt {run.attempt}")
if run.sweep_id:
    facts.append(f"one of [sweep {run.sweep_id}](/sweep?sweep={run.sweep_id})")
slurm_jobs = notebook.snapshots(run.id, "slurm")
if slurm_jobs:
    runtime = run.config.get("runtime", {})
    job = slurm_jobs[-1].payload
    facts.append(f"Slurm job {job['job_id']}: {jobs.job_in_words(str(job['job_id']))} · "
                 f"{runtime.get('processes', 1) * runtime.get('nodes', 1)} rank(s) on {runtime.get('nodes', 1)} node(s)")
attempts = notebook.snapshots(run.id, "provenance")
if attempts and attempts[-1].payload.get("git", {}).get("dirty"):
    facts.append("⚠️ **dirty tree** (uncommitted code; see Provenance)")
st.markdown(" · ".join(facts))
if run.status_reason and run.status in ("failed", "stopped"):
    st.caption(literal(run.status_reason))

actions = st.columns([1, 1, 1.6, 4.4])  # "✎ Clone and edit" whole at 1400 px
me = current_person()
may_stop = may_change(me, run.owner, f"stop run {run.id}")
may_resume = may_change(me, run.owner, f"resume run {run.id}")
try:
    if actions[0].button("⏹ Stop", disabled=run.status not in LIVE_STATUSES or run.stop_requested or not may_stop,
                         help=literal(may_stop.reason) or None):
        st.toast(jobs.request_stop(notebook, run.id, by=me))
        st.rerun()
    if actions[1].button("▶ Resume", disabled=run.status not in RESUMABLE_STATUSES or not may_resume,
                         help=literal(may_resume.reason) or None):
        step = jobs.resume(notebook, run.id, by=me)
        st.toast(f"Queued to resume from step {step}." if step else "Queued to start again (no checkpoint).")
        st.rerun()
except Refused as refusal:  # the run moved on since this page was drawn
    st.warning(literal(refusal))
if actions[2].button("✎ Clone and edit"):
    st.switch_page("app_pages/new_run.py", query_params={"clone": str(run.id)})
blocked = may_stop if run.status in LIVE_STATUSES else may_resume if run.status in RESUMABLE_STATUSES else None
if blocked is not None and not blocked:  # said on the page too: a disabled button's tooltip is easily missed
    actions[3].caption(f"🔒 {literal(blocked.reason[0].upper() + blocked.reason[1:])}.")

if run.divergence_report:
    report = run.divergence_report
    st.error(f"💥 **Diverged at step {literal(report.get('first_step'))}**: {literal(report.get('reason'))} "
             f"(guard policy {literal_code(report.get('policy'))}).")
    overflow = (report.get("incidents") or [{}])[0].get("diagnostics", {}).get("overflow")
    if isinstance(overflow, dict) and overflow.get("explanation"):
        st.markdown(f"**Why** (measured on that step's features): {overflow['explanation']}")
    with st.expander("Divergence report: last finite values and diagnostics"):
        st.json(report)
for warning in run.lint:
    st.warning(f"Lint · **{literal(warning.get('path'))}**: {literal(warning.get('message'))}")

# The open tab is in the address (?tab=Evaluation): a link opens it, and only it is drawn and kept live (each tab
# open on a live run costs the run's cores some work, bench/viewers.py).
# A run of one's own code (script, imported logs) has no Evaluation or Weights tab unless it logged them.
own_code = is_own_code(run.config)
has_report = bool(notebook.snapshot_steps(run.id, "few_shot"))
tab_names = ["Charts", *(["Evaluation"] if not own_code or has_report else []),
         "Images" if own_code else "Reconstructions",
         *(["Weights & gradients"] if not own_code or notebook.snapshot_steps(run.id, "histograms") else []),
         "Provenance", "Config", "Output"]
tabs = dict(zip(tab_names, st.tabs(tab_names, key="tab", bind="query-params")))
charts_tab, provenance_tab, config_tab, output_tab = (tabs[n] for n in ("Charts", "Provenance", "Config", "Output"))
eval_tab, weights_tab = tabs.get("Evaluation"), tabs.get("Weights & gradients")
images_tab = tabs["Images" if own_code else "Reconstructions"]


def read_series(key: str) -> tuple[np.ndarray, np.ndarray]:
    """The series on screen for `key`, reading only points newer than the last one this session has."""
    cache = st.session_state.setdefault("series", {})
    held = cache.get((run.id, run.attempt, key))  # a resumed run discarded later points: a new attempt, a new cache
    if held is None:
        held = notebook.metric_history(run.id, key, max_points=MAX_POINTS)
    else:
        steps, values = notebook.metric_history(run.id, key, since_step=int(held[0][-1]) if len(held[0]) else None)
        if len(steps):
            held = (np.concatenate([held[0], steps]), np.concatenate([held[1], values]))
            if len(held[0]) > 2 * MAX_POINTS:
                held = downsample(held[0], held[1], MAX_POINTS)
    cache[(run.id, run.attempt, key)] = held
    return held


def draw_charts(every_second: bool) -> None:
    """The training curves (`every_second`: redrawn each second while live), or the slower ones (held-out
    evaluation, per-layer norms, system: every few seconds) — a second's work stays that of a few charts."""
    keys = notebook.metric_keys(run.id)
    groups = {title: group for title, group in metric_groups(keys).items()
              if (title in TRAINING_CHARTS) == every_second}
    if every_second and any(key.startswith("acc/") and key.endswith(MASKED) for key in keys):
        st.caption(f"`acc/…{MASKED}`: accuracy on the training episodes as the encoder saw them, masked · "
                   "`eval/acc/…`: held-out classes, every patch seen (runs from before the split logged the "
                   "masked one as `acc/…`)")
    for title, group in groups.items():
        series = {key: read_series(key) for key in group}
        live_chart(title, series, key=f"chart:{title}", smoothing=smoothing, log_y=log_y,
                   identity=(run.id, run.attempt))
        pin_popover(notebook, key=f"pin:{title}", run_ids=[run.id], default_title=f"Run {run.id}: {title.lower()}",
                    caption=f"{title} of run {run.id} ({run.name})",
                    make_figure=lambda caption, series=series, title=title, group=group: Figure(  # type: ignore[misc]
                        f"run{run.id}-{title.lower().replace(' ', '-')}.png",
                        chart_png(series, title=f"run {run.id}: {title}", smoothing=smoothing), caption,
                        {"kind": "metric_chart", "run_ids": [run.id], "keys": group, "smoothing": smoothing,
                         "log_y": log_y}))


def draw_training_charts() -> None:
    now = notebook.get_run(run.id)
    if (now.status, now.attempt, now.stop_requested) != (run.status, run.attempt, run.stop_requested):
        st.rerun()  # the run changed state (or was resumed): redraw the whole page, with a fresh cache
    show_speed()
    draw_charts(every_second=True)


def show_speed() -> None:
    """Images/s, achieved TFLOP/s and (on a GPU with a known peak) MFU, redrawn with the curves: the last step's
    while the run is live; once it has ended, the median over its steps, the figure its journal draft gives."""
    if run.status in LIVE_STATUSES:
        said, readings = "", {key: value for key, (_, value) in notebook.latest_metrics(run.id).items()}
    else:
        said, readings = " (median over the run)", {
            key: median for key in SPEED_KEYS if (median := notebook.metric_median(run.id, key)) is not None}
    speed = [f"{readings[IMAGES_PER_S]:,.0f} images/s" if IMAGES_PER_S in readings else None,
             f"{readings['perf/tflops']:.3g} TFLOP/s" if "perf/tflops" in readings else None,
             f"MFU {100 * readings['perf/mfu']:.1f} % of the GPU's dense {run_precision()} peak"
             if "perf/mfu" in readings else None]
    if any(speed):
        st.markdown(f"**Speed**{said} · " + " · ".join(s for s in speed if s))


def run_precision() -> str:
    """What the run's matrix products computed in, as its start recorded it with the device ("cuda (tf32)"); MFU
    divides by the peak at that precision."""
    device = run.device or ""
    return device.rpartition(" (")[2].rstrip(")") if device.endswith(")") else "bf16"


def draw_slower_charts() -> None:
    draw_charts(every_second=False)


def wait_for_the_first_point() -> None:
    """Until a run has metrics its page asks four times a second (a launched run's first point is stored within
    a second of Launch); it draws the first points at once, then the whole page once, at its usual pace."""
    drawn = f"first points drawn:{run.id}:{run.attempt}"
    status = notebook.get_run(run.id).status
    if st.session_state.pop(drawn, False) or (status != run.status and status not in LIVE_STATUSES):
        st.rerun()  # (queued → running alone waits for this: the status line is redrawn with the charts)
    if not notebook.metric_keys(run.id):
        st.info(f"No metrics yet: the run is {run.status}.")
        return
    draw_charts(every_second=True)
    st.session_state[drawn] = True


live = run.status in LIVE_STATUSES
# seconds between redraws of the training curves and of the rest, while the run is live; a tab in the background
# is redrawn rarely, and at once when it comes back to the front
visible = page_is_visible()
every_second, every_few = (1.0, 5.0) if visible else (30.0, 60.0)
if charts_tab.open:  # only the tab on screen is drawn (and kept live)
    with charts_tab:
        controls = st.columns([2, 1, 3])
        # kept while another tab is open, and from run to run: a person's way of reading curves
        smoothing = controls[0].slider("Smoothing (debiased EMA)", 0.0, 0.99, 0.6, 0.01, key="smoothing",
                                       persist_state="session")
        log_y = controls[1].toggle("Log y", key="log y", persist_state="session")
        if not notebook.metric_keys(run.id):
            st.fragment(wait_for_the_first_point, run_every=(0.25 if visible else every_second) if live else None)()
        else:
            st.fragment(draw_training_charts, run_every=every_second if live else None)()
            st.fragment(draw_slower_charts, run_every=every_few if live else None)()


def draw_evaluation() -> None:
    """The few-shot report and the held-out feature maps (redrawn every few seconds while the run is live)."""
    final = notebook.latest_snapshots([run.id], "few_shot").get(run.id)
    if final is None:
        st.info("The few-shot report (held-out classes, mean ± 95 % interval for each judge) is written when the "
                "run completes; the charts show the smaller evaluation made every few steps.")
    else:
        split = final["split"]
        chance = 1 / final["n_way"]
        results = {final.get("judged_on", "held-out classes"): final["accuracy"]}
        if final.get("seen_classes"):
            results["seen classes, held-out images"] = final["seen_classes"]
        figure = few_shot_figure(results, title=f"{final['n_way']}-way {final['k_shot']}-shot, "
                                                f"{final['episodes']} episodes at step {final['step']}")
        figure.add_hline(y=chance, line_dash="dot", annotation_text=f"chance 1/{final['n_way']}")
        st.plotly_chart(figure, key="few-shot")
        st.dataframe(interval_table(results), width="stretch")
        held = (f"Held out: {literal(', '.join(split['eval_classes']))} · trained on: "
                f"{literal(', '.join(split['train_classes']))}"
                if split.get("held_out_classes", True) else
                f"No class held out (data.holdout_classes = 0): judged on held-out images of all "
                f"{len(split['train_classes'])} classes")
        st.caption(f"{held} · judged on unmasked images · k-NN with {final['knn_neighbours']} neighbours · linear "
                   "probe: logistic regression fitted on each episode's support · the intervals cover this one "
                   "split's episodes (another `data.seed` can differ by more).")
        if final.get("discriminator") == "co-trained head":
            st.caption("The discriminator was trained jointly with the encoder: its accuracy is part of the "
                       "training objective, not a probe of frozen features (`model.discriminator.detach`).")
    steps = notebook.snapshot_steps(run.id, "features")
    if steps:
        st.subheader("Held-out features")
        step = steps[0] if len(steps) == 1 else st.select_slider("Evaluation step", options=steps, value=steps[-1])
        features = notebook.snapshot(run.id, "features", step)
        if features.get("collapsed"):
            st.warning(f"⚠️ Collapsed at step {step}: {features['collapse_reason']}.")
        st.plotly_chart(feature_figure(features), key="features")
        projection = (f" · PCA of {features['dim']} dimensions keeping {features['pca_explained']:.0%} of the "
                      "variance" if features.get("projection") == "pca" else "")
        st.caption(f"{len(features['points'])} held-out images, {features['dim']}-D features"
                   f"{' (L2-normalised)' if features.get('normalized') else ''}{projection} · alignment "
                   f"{features['alignment']:.3f} (lower: classes tighter) · uniformity {features['uniformity']:.3f}"
                   " (lower: more spread out)")

if images_tab.open and own_code:
    with images_tab:
        draw_images_and_text(notebook, run)
elif images_tab.open:
    with images_tab:
        keys = notebook.image_keys(run.id)
        if not keys:
            st.info("No reconstructions: this run has no decoder, or none has been drawn yet.")
        for key in keys:
            steps = notebook.image_steps(run.id, key)
            step = steps[0] if len(steps) == 1 else st.select_slider(f"{literal(key)} — step", options=steps,
                                                                     value=steps[-1])
            png = notebook.get_image(run.id, key, step)
            show_image(png, caption=f"{literal(key)} at step {step}: original | masked | decoder A | decoder B")
            pin_popover(notebook, key=f"pin:{key}:{step}", run_ids=[run.id], default_title=f"Run {run.id}: {key}",
                        caption=f"{key} of run {run.id} at step {step}",
                        make_figure=lambda caption, png=png, key=key, step=step: Figure(  # type: ignore[misc]
                            f"run{run.id}-{key}-step{step}.png", png, caption,
                            {"kind": "image", "run_id": run.id, "key": key, "step": step}))


if eval_tab is not None and eval_tab.open:
    with eval_tab:
        st.fragment(draw_evaluation, run_every=every_few if live else None)()

if weights_tab is not None and weights_tab.open:
    with weights_tab:
        steps = notebook.snapshot_steps(run.id, "histograms")
        if not steps:
            st.info("No histograms yet: they are logged every `schedule.histogram_every` episodes (per-layer norms are "
                    "on the Charts tab).")
        else:
            step = steps[0] if len(steps) == 1 else st.select_slider("Histogram step", options=steps, value=steps[-1])
            snapshot = notebook.snapshot(run.id, "histograms", step)
            groups = snapshot["groups"]
            left, right = st.columns(2)
            left.plotly_chart(histogram_figure(groups, "weights", title=f"weights at step {step}"), key="hist:w")
            right.plotly_chart(histogram_figure(groups, "grads", title=f"gradients at step {step}"), key="hist:g")
            if isinstance(snapshot.get("seconds"), (int, float)):  # runs from before it was kept have none
                st.caption(f"Taken in {1000 * snapshot['seconds']:,.1f} ms, timed apart from the step: the step's "
                           f"images/s is its training's alone.")

if provenance_tab.open:
    with provenance_tab:
        if not attempts:
            st.info("No provenance: the run has not started yet (or ran before provenance was recorded).")
        else:
            labels = {i: f"attempt {a.key} (from step {a.step})" for i, a in enumerate(attempts)}
            chosen = (len(attempts) - 1 if len(attempts) == 1 else
                      st.selectbox("Attempt", list(labels), index=len(attempts) - 1, format_func=labels.__getitem__) or 0)
            provenance = attempts[chosen].payload
            git = provenance.get("git", {})
            if "error" in git:
                st.warning(f"No git state: {literal(git['error'])}")
            else:
                state = (f"⚠️ **dirty tree**: {len(git.get('changed', []))} file(s) changed" if git.get("dirty")
                         else "clean tree")
                st.markdown(f"**Code**: commit {literal_code(git.get('commit', '')[:12])} on "
                            f"{literal_code(git.get('branch'))} · {state}")
            hardware = provenance.get("hardware", {})
            gpus = ", ".join(f"{g['name']} ({g['memory_gb']} GB)" for g in hardware.get("gpus", [])) or "none"
            st.dataframe({"value": {key: str(value) for key, value in {
                "host": provenance.get("host"), "python": provenance.get("python"),
                **{f"package {k}": v or "not installed" for k, v in provenance.get("packages", {}).items()},
                "CUDA (torch build)": provenance.get("cuda") or "—", "cuDNN": provenance.get("cudnn") or "—",
                "CPU": f"{hardware.get('cpu')} · {hardware.get('cpu_cores_logical')} logical cores",
                "memory": f"{hardware.get('memory_gb')} GB", "GPUs": gpus,
                "GPU driver": hardware.get("gpu_driver") or "—", "working folder": provenance.get("cwd")}.items()}},
                width="stretch")
            st.caption("Command line")
            st.code(" ".join(provenance.get("command", [])), language="bash")
            if git.get("diff_head"):
                truncated = " (cut at 1 MB)" if git.get("diff_truncated") else ""
                with st.expander(f"Uncommitted changes: {git.get('diff_bytes', 0):,} bytes{truncated} — full diff in "
                                 f"{literal_code(git.get('diff_file'))}"):
                    st.code(git["diff_head"], language="diff")

if config_tab.open and own_code:
    with config_tab:
        draw_flat_config(notebook, run)
elif config_tab.open:
    with config_tab:
        if run.config.get("model", {}).get("contrastive", {}).get("enabled", True):
            no_positive = run.config.get("loss", {}).get("no_positive", "exclude")  # older runs: the default
            st.caption(f"InfoNCE anchors with no positive (`loss.no_positive` = {no_positive}): " + (
                "counted as a loss of 0, as SupContrast's SupConLoss" if no_positive == "zero" else
                "left out of the mean (SupContrast would count them as 0)"))
        st.code(json.dumps(run.config, indent=2), language="json")

if output_tab.open:
    with output_tab:
        checkpoints = notebook.checkpoints(run.id)
        if checkpoints:
            st.caption(f"Last checkpoint: step {checkpoints[-1].step} — {literal_code(checkpoints[-1].path)}")
        st.code(run.log_tail or "(no output yet)", language=None)
        if slurm_jobs:
            job = slurm_jobs[-1].payload
            for name, tail in jobs.job_files(Path(job.get("folder", "")), str(job["job_id"])).items():
                with st.expander(f"Slurm job file {name}"):
                    st.code(tail or "(empty)", language=None)
