"""The token samplers `generate` accepts: keras-hub's, by name, with their argument checks.

This module imports no TensorFlow (the keras-hub classes are imported on first use), so the command line lists
the sampler names from `SAMPLERS` instantly.

Examples:

    >>> from lmzoo.samplers import SAMPLERS
    >>> SAMPLERS.names()
    ['beam', 'greedy', 'random', 'top_k', 'top_p']
"""

from lmzoo.errors import LmzooError
from lmzoo.registry import Registry

DEFAULT_TOP_K = 10
DEFAULT_TOP_P = 0.9
DEFAULT_NUM_BEAMS = 4

SAMPLERS = Registry("sampler")
SAMPLERS.register("greedy", "keras_hub.samplers:GreedySampler")
SAMPLERS.register("top_k", "keras_hub.samplers:TopKSampler")
SAMPLERS.register("top_p", "keras_hub.samplers:TopPSampler")
SAMPLERS.register("random", "keras_hub.samplers:RandomSampler")
SAMPLERS.register("beam", "keras_hub.samplers:BeamSampler")


def check_sampler_args(sampler, *, temperature, top_k, top_p, num_beams, seed):
    """Raise `LmzooError` for an unknown sampler or an out-of-range sampler argument."""
    if sampler not in SAMPLERS:
        raise LmzooError(SAMPLERS.unknown_message(sampler))
    if temperature <= 0:
        raise LmzooError(f"temperature must be positive, got {temperature}; use sampler='greedy' for argmax.")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise LmzooError(f"seed must be an integer or None, got {seed!r}.")
    if sampler == "top_k" and top_k < 1:
        raise LmzooError(f"top_k must be at least 1, got {top_k}.")
    if sampler == "top_p" and not 0.0 < top_p <= 1.0:
        raise LmzooError(f"top_p must be in (0, 1], got {top_p}.")
    if sampler == "beam" and num_beams < 1:
        raise LmzooError(f"num_beams must be at least 1, got {num_beams}.")


def make_sampler(sampler, *, temperature=1.0, top_k=DEFAULT_TOP_K, top_p=DEFAULT_TOP_P,
                 num_beams=DEFAULT_NUM_BEAMS, seed=None):
    """The keras-hub sampler object for a sampler name (arguments checked by `check_sampler_args`).

    Examples:

        >>> type(make_sampler("top_k", top_k=5, seed=1)).__name__
        'TopKSampler'
    """
    # Each keras-hub sampler takes its own subset of the arguments.
    options = {
        "greedy": {},
        "top_k": {"k": top_k, "seed": seed},
        "top_p": {"p": top_p, "seed": seed},
        "random": {"seed": seed},
        "beam": {"num_beams": num_beams},
    }[sampler]
    return SAMPLERS.get(sampler)(temperature=temperature, **options)
