"""The runner's registries: training objectives (tasks), optimizers, learning-rate decays, `tf.distribute`
strategies and dtype policies.

Each name maps to where its implementation lives, imported on first use: this module imports no TensorFlow, so
the study schema, the command line and their errors read the known names from here in milliseconds. Adding an
objective is its own file under `lmzoo/training/tasks/` and one line below.

Examples:

    >>> from lmzoo.training.registries import DECAYS, OPTIMIZERS, STRATEGIES, TASKS
    >>> OPTIMIZERS.names(), DECAYS.names()
    (['adam', 'adamw', 'sgd'], ['constant', 'cosine', 'linear', 'plateau', 'step'])
    >>> STRATEGIES.names()
    ['auto', 'default', 'mirrored', 'multi_worker', 'tpu']
    >>> TASKS.names()
    ['causal_lm', 'classification', 'masked_lm', 'translation']
"""

from lmzoo.registry import Registry

# objective -> Task class. A language model's `objective` attribute picks its task.
TASKS = Registry("task")
TASKS.register("causal_lm", "lmzoo.training.tasks.causal_lm:CausalLMTask")
TASKS.register("masked_lm", "lmzoo.training.tasks.masked_lm:MaskedLMTask")
TASKS.register("classification", "lmzoo.training.tasks.classification:ClassificationTask")
TASKS.register("translation", "lmzoo.training.tasks.translation:TranslationTask")

# `optimizer.name` -> the keras optimizer class (every one takes keras' decoupled `weight_decay`).
OPTIMIZERS = Registry("optimizer")
OPTIMIZERS.register("adamw", "keras.optimizers:AdamW")
OPTIMIZERS.register("adam", "keras.optimizers:Adam")
OPTIMIZERS.register("sgd", "keras.optimizers:SGD")

# `schedule.decay` -> the `lmzoo.training.schedules.Schedule` class that implements it.
DECAYS = Registry("learning-rate decay")
DECAYS.register("cosine", "lmzoo.training.schedules:WarmupDecay")
DECAYS.register("linear", "lmzoo.training.schedules:WarmupDecay")
DECAYS.register("constant", "lmzoo.training.schedules:WarmupDecay")
DECAYS.register("step", "lmzoo.training.schedules:StepDecay")
DECAYS.register("plateau", "lmzoo.training.schedules:PlateauDecay")

# `train.strategy` -> a function building the strategy.
STRATEGIES = Registry("strategy")
STRATEGIES.register("auto", "lmzoo.training.strategy:auto_strategy")
STRATEGIES.register("default", "lmzoo.training.strategy:default_strategy")
STRATEGIES.register("mirrored", "lmzoo.training.strategy:mirrored_strategy")
STRATEGIES.register("multi_worker", "lmzoo.training.strategy:multi_worker_strategy")
STRATEGIES.register("tpu", "lmzoo.training.strategy:tpu_strategy")

# `train.dtype_policy` -> the dtype of its products, whose peak MFU is measured against (variables stay float32
# under every policy). `bfloat16_output` is float32 but for the output layer's product, in bfloat16
# (`Trainer(output_dtype=...)`): measured against the bfloat16 peak, the lower of the two MFUs it could claim.
DTYPE_POLICIES = Registry("dtype policy")
DTYPE_POLICIES.register("float32", "float32")
DTYPE_POLICIES.register("mixed_bfloat16", "bfloat16")
DTYPE_POLICIES.register("mixed_float16", "float16")
DTYPE_POLICIES.register("bfloat16_output", "bfloat16")
