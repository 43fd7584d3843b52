"""Names more than one room spells: the metric keys the training loop logs and the pages and the overview read,
the event kinds the loop sends its sink, and the snapshot kinds the notebook stores them under. Plain strings
and nothing else (no imports): the engine can use them without torch, the pages without the database."""

# --- metric keys ------------------------------------------------------------------------------------------------
LOSS_TOTAL = "loss/total"
LEARNING_RATE = "lr"
GRAD_NORM = "grad_norm"
IMAGES_PER_S = "images_per_s"
EVAL_ACC_PROTOTYPE = "eval/acc/prototype"
EVAL_ACC_DISCRIMINATOR = "eval/acc/discriminator"

# --- event kinds: what the training loop tells its sink (`Sink.log_event(kind, payload)`) -------------------------
EVENT_STARTED = "started"
EVENT_CHECKPOINT = "checkpoint"
EVENT_PROVENANCE = "provenance"
EVENT_FEATURES = "features"
EVENT_EVALUATION = "evaluation"
EVENT_HISTOGRAMS = "histograms"
EVENT_DIVERGENCE = "divergence"
EVENT_STATUS = "status"

# --- snapshot kinds: JSON documents the notebook keeps by step ----------------------------------------------------
SNAPSHOT_FEATURES = "features"
SNAPSHOT_FEW_SHOT = "few_shot"
SNAPSHOT_HISTOGRAMS = "histograms"
SNAPSHOT_PROVENANCE = "provenance"
SNAPSHOT_HYPERPARAMETERS = "hyperparameters"  # a script's own config, when it attaches to a launched run
