"""Recurrent state carried across batches (truncated BPTT and stateful evaluation), under any strategy.

keras' `stateful=True` layers need a fixed batch and keep their state in layer variables that diverge between
mirrored replicas; lmzoo keeps the state explicitly instead. `CarriedState` holds the GLOBAL batch's states,
one `(B, H)` variable per state tensor, in the batch's row order: replica r reads rows `[r B/R, (r+1) B/R)`
(the rows `experimental_distribute_dataset` gives it) and all replicas all-gather their new rows back, so every
replica holds the same full state, a checkpoint saves it whole, and one replica or eight follow the same
streams. A position counter resets the states to zeros at the start of each pass over the data.
"""

import tensorflow as tf


class CarriedState(tf.Module):
    """The states an `RNNLM` carries from one contiguous batch to the next.

    Create it under the strategy's scope. In a replica step: `states = carried.read()`, then
    `model(x, initial_state=states, return_state=True)`, then `carried.write(new_states)`.

    Args:
        model: the `RNNLM` (its `zero_states` gives the shapes and dtype).
        global_batch: B, the number of parallel streams.
        steps_per_pass: the batches of one pass over the data; the states reset when a pass begins.
            None never resets (an evaluation, which resets explicitly).

    Examples:

        >>> import lmzoo
        >>> model = lmzoo.build_model("lstm", preset="tiny", vocab_size=10)
        >>> carried = CarriedState(model, global_batch=4, steps_per_pass=3)
        >>> [tuple(v.shape) for v in carried.states]
        [(4, 64), (4, 64), (4, 64), (4, 64)]
    """

    def __init__(self, model, global_batch, steps_per_pass=None):
        super().__init__(name="carried_state")
        self.global_batch = global_batch
        self.steps_per_pass = steps_per_pass
        sync = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_WRITE,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.states = [tf.Variable(tf.zeros_like(s), name=f"state_{i}", **sync)
                       for i, s in enumerate(model.zero_states(global_batch))]
        self.position = tf.Variable(tf.constant(0, tf.int64), name="position", **sync)

    def read(self):
        """This replica's rows of the states `(B/R, H)`, zeros at the start of a pass."""
        context = tf.distribute.get_replica_context()
        rows = self.global_batch // context.num_replicas_in_sync
        start = context.replica_id_in_sync_group * rows
        fresh = tf.equal(self.position % self.steps_per_pass, 0) if self.steps_per_pass else tf.constant(False)
        return [tf.where(fresh, tf.zeros_like(s), s) for s in (v[start:start + rows] for v in self.states)]

    def write(self, states):
        """Store this replica's new rows (every replica holds the whole state afterwards) and count the step."""
        context = tf.distribute.get_replica_context()
        if context.num_replicas_in_sync > 1:
            states = [context.all_gather(s, axis=0) for s in states]
        for variable, state in zip(self.states, states):
            variable.assign(tf.cast(state, variable.dtype))
        self.position.assign_add(1)

    def reset(self):
        """Zero states and position (call outside any replica step)."""
        for variable in self.states:
            variable.assign(tf.zeros_like(variable))
        self.position.assign(0)
