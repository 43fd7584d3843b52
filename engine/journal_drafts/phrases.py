"""Every fixed phrase of a journal draft, one table per language: English, or Chinese when
LAB_JOURNAL_LANGUAGE=zh (the original journal is Chinese). Numbers and field labels are formatted by the
composer, the same way in both; a phrase takes its numbers through `str.format` fields."""

from __future__ import annotations

import os

LANGUAGES = ("en", "zh")

EN = {
    "run": "run {id}",
    "tried": "What was tried",
    "happened": "What happened",
    "before": "Against what came before",
    "figures": "Figures",
    "preset": "Preset: `{preset}` — {summary}",
    "no_preset": "No preset: a config of its own.",
    "against_parent": "Changed from the parent, [run {id}](/run?run={id}):",
    "against_preset": "Changed from the preset:",
    "no_changes": "Nothing changed: the same config.",
    "status": "Status",
    "duration": "Duration",
    "steps": "Steps",
    "device": "Device",
    "images_per_s": "Images/s (median)",
    "final_losses": "Final losses (step {step}):",
    "no_metrics": "The run logged no metrics at all.",
    "held_out": "Few-shot accuracy, {n_way}-way {k_shot}-shot, {episodes} episodes, mean ± 95 % interval:",
    "judge": "Judge",
    "held_out_column": "held-out ({judged_on})",
    "seen_column": "seen classes",
    "no_report": "No few-shot evaluation report: {why}",
    "no_report_failed": "the run ended before its final evaluation.",
    "no_report_none": "the run wrote none (its evaluation failed, or `schedule.final_eval_episodes` is 0).",
    "diverged": "Diverged at step {step}: **{reason}** ({stage} check). The guard's policy: `{policy}`, action "
                "`{action}`.",
    "mechanism": "What the guard measured: {why}",
    "diagnostics": "Diagnostics of that step:",
    "failed": "Failed: {reason}",
    "last_lines": "The last lines of its output:",
    "no_output": "It printed nothing.",
    "stopped": "Stopped by request at step {step}.",
    "earlier_parent": "Its parent, [run {id}](/run?run={id}) ({status}):",
    "earlier_latest": "The latest earlier finished run of this preset, [run {id}](/run?run={id}):",
    "no_earlier": "Nothing earlier to compare with: no parent and no earlier finished run of this preset.",
    "earlier_no_report": "[Run {id}](/run?run={id}) has no few-shot report to compare with.",
    "this_run": "this run",
    "verdict": "verdict",
    "higher": "higher",
    "lower": "lower",
    "within": "within the intervals",
    "missing_figure": "Figure “{name}” could not be drawn: {why}",
    "loss_curves": "Loss curves",
    "accuracy_curves": "Accuracy curves",
    "reconstruction": "Reconstructions at step {step} (original / masked / decoder A / decoder B)",
    "features": "Held-out feature space at step {step}",
    "no_series": "the run logged no {what} values",
    "sweep_title": "Sweep {id}: {name}",
    "sweep_fields": "Swept ({mode}): {fields}",
    "sweep_table": "Each run's values and its final {metric}:",
    "sweep_best": "Best by {metric}: [run {id}](/run?run={id}).",
    "sweep_none_scored": "No run of the sweep has a final {metric}.",
    "sweep_runs": "Every run of the sweep:",
    "parallel": "The swept fields against the final {metric}",
    "best_prefix": "Best run {id}: {caption}",
    "status_words": {"completed": "completed", "stopped": "stopped", "diverged": "diverged", "failed": "failed",
                     "deleted": "deleted", "queued": "queued", "running": "running"},
}

ZH = {
    "run": "运行 {id}",
    "tried": "尝试了什么",
    "happened": "结果如何",
    "before": "与之前相比",
    "figures": "图",
    "preset": "预设：`{preset}` — {summary}",
    "no_preset": "没有预设：独立的配置。",
    "against_parent": "相对于父运行 [运行 {id}](/run?run={id}) 的改动：",
    "against_preset": "相对于预设的改动：",
    "no_changes": "没有改动：配置相同。",
    "status": "状态",
    "duration": "用时",
    "steps": "步数",
    "device": "设备",
    "images_per_s": "每秒图像数（中位数）",
    "final_losses": "最终损失（第 {step} 步）：",
    "no_metrics": "该运行没有记录任何指标。",
    "held_out": "小样本准确率，{n_way}-way {k_shot}-shot，{episodes} 个 episode，均值 ± 95% 置信区间：",
    "judge": "判别方式",
    "held_out_column": "留出（{judged_on}）",
    "seen_column": "已见类别",
    "no_report": "没有小样本评估报告：{why}",
    "no_report_failed": "运行在最终评估之前就结束了。",
    "no_report_none": "运行没有写出报告（评估失败，或 `schedule.final_eval_episodes` 为 0）。",
    "diverged": "在第 {step} 步发散：**{reason}**（{stage} 检查）。守护策略：`{policy}`，动作 `{action}`。",
    "mechanism": "守护测得的原因：{why}",
    "diagnostics": "该步的诊断：",
    "failed": "失败：{reason}",
    "last_lines": "输出的最后几行：",
    "no_output": "没有任何输出。",
    "stopped": "在第 {step} 步按请求停止。",
    "earlier_parent": "父运行 [运行 {id}](/run?run={id})（{status}）：",
    "earlier_latest": "同一预设之前最近完成的运行 [运行 {id}](/run?run={id})：",
    "no_earlier": "没有可比较的：没有父运行，也没有同一预设之前完成的运行。",
    "earlier_no_report": "[运行 {id}](/run?run={id}) 没有可比较的小样本报告。",
    "this_run": "本次运行",
    "verdict": "结论",
    "higher": "更高",
    "lower": "更低",
    "within": "在置信区间内",
    "missing_figure": "图“{name}”未能绘制：{why}",
    "loss_curves": "损失曲线",
    "accuracy_curves": "准确率曲线",
    "reconstruction": "第 {step} 步的重建（原图 / 掩码 / 解码器 A / 解码器 B）",
    "features": "第 {step} 步的留出特征空间",
    "no_series": "该运行没有记录{what}",
    "sweep_title": "扫参 {id}：{name}",
    "sweep_fields": "扫描的字段（{mode}）：{fields}",
    "sweep_table": "每个运行的取值与最终 {metric}：",
    "sweep_best": "按 {metric} 最好的是 [运行 {id}](/run?run={id})。",
    "sweep_none_scored": "扫参中没有运行有最终 {metric}。",
    "sweep_runs": "扫参的所有运行：",
    "parallel": "扫描字段与最终 {metric}",
    "best_prefix": "最好的运行 {id}：{caption}",
    "status_words": {"completed": "已完成", "stopped": "已停止", "diverged": "已发散", "failed": "失败",
                     "deleted": "已删除", "queued": "排队中", "running": "运行中"},
}

TABLES = {"en": EN, "zh": ZH}


def journal_language() -> str:
    """The language drafts are written in: $LAB_JOURNAL_LANGUAGE ("zh" or "en"), English when unset or unknown."""
    wanted = os.environ.get("LAB_JOURNAL_LANGUAGE", "en").strip().lower()
    return wanted if wanted in TABLES else "en"


def phrases(language: str) -> dict:
    """The phrase table of `language` (English for any other)."""
    return TABLES.get(language, EN)
