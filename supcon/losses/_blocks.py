"""Runs a per-block contrastive loss over row blocks of the anchors, with its closed-form gradient.

Dense (one block: the forward keeps the one `[rows, cols]` matrix its backward
needs) or blocked (a `tf.while_loop` over blocks of `block_size` rows that keeps
nothing of size `cols` per row, so peak memory is `O(block_size x cols)` in
eager, graph and XLA modes alike). The blocks themselves are
`supcon.losses._closed_form`'s.
"""

import tensorflow as tf


def _rows(tensor, start, size):
    """`tensor[start:start + size]` with a static `size` (XLA needs static slice sizes)."""
    begin = tf.concat([[start], tf.zeros([tensor.shape.rank - 1], tf.int32)], axis=0)
    return tf.slice(tensor, begin, tf.concat([[size], tf.shape(tensor)[1:]], axis=0))


def _stop_gradients(tensors):
    return tuple(tf.stop_gradient(tensor) for tensor in tensors)


def run_blocks(block_fn, anchors, contrasts, row_info, block_size):
    """Runs `block_fn` over row blocks of `anchors` with its closed-form gradient.

    With `block_size=None` the whole anchor matrix is one block: the forward
    pass keeps what the block's backward needs (one `[rows, cols]` matrix).
    Otherwise the anchors are zero-padded to whole blocks and blocks run in a
    `tf.while_loop` that keeps nothing of size `cols` per row, so peak memory
    is `O(block_size x cols)`; values and gradients are the dense ones. The
    forward loop also accumulates the gradient for an upstream of 1 on every
    valid anchor (`O((rows + cols) x dim)`): the gradient is linear in the
    upstream, so a uniform one (a mean-reduced loss) just scales it, and any
    other upstream recomputes each block. Every block has the same static
    shape, so the loops also compile with XLA.

    Either way the forward runs on detached inputs (`tf.stop_gradient`):
    under an eager `tf.GradientTape` nothing inside is recorded (the tape
    would otherwise keep every block's intermediates alive), and the gradient
    is the block's own.

    Args:
      block_fn: `(anchor_block, contrasts, row_info_block, is_real)
        -> _closed_form.Block`; `is_real` is None on the dense path, else bool
        `[block]` false on padding rows (which must come out invalid).
      anchors: float32 `[rows, dim]`.
      contrasts: tuple of float32 `[cols_g, dim]` contrast groups, each
        differentiated on its own (a group whose gradient is unused is pruned
        from the dense path's graph).
      row_info: tuple of `[rows]` tensors describing each anchor row, sliced
        alongside the anchors.
      block_size: None or a positive int.

    Returns:
      `(losses, valid)`: float32 `[rows]`, bool `[rows]`.
    """
    if block_size is None:

        @tf.custom_gradient
        def dense(anchors, *contrasts):
            block = block_fn(tf.stop_gradient(anchors), _stop_gradients(contrasts), row_info, None)

            def grad(upstream_losses, unused_upstream_valid):
                grad_anchors, grad_contrasts = block.backward(upstream_losses)
                return (grad_anchors, *grad_contrasts)

            # `valid` leaves as float32: custom_gradient outputs must be differentiable dtypes.
            return (block.losses, tf.cast(block.valid, tf.float32)), grad

        losses, valid = dense(anchors, *contrasts)
        return losses, valid > 0.5

    rows = tf.shape(anchors)[0]
    num_blocks = (rows + block_size - 1) // block_size
    padding = num_blocks * block_size - rows
    # Padding rows repeat the last row's description (so indices stay valid)
    # and are flagged by `is_real`.
    padded_info = tuple(tf.concat([info, tf.repeat(info[-1:], padding, axis=0)], 0) for info in row_info)
    is_real = tf.range(num_blocks * block_size) < rows

    def run_block(anchors, contrasts, index):
        start = index * block_size
        info_block = tuple(_rows(info, start, block_size) for info in padded_info)
        return block_fn(_rows(anchors, start, block_size), contrasts, info_block, _rows(is_real, start, block_size))

    def value_and_grad_loop(anchors, contrasts, upstream_losses):
        """`(d anchors, d contrasts, losses, valid as float32)`, block by block, for an upstream (None: 1)."""

        def body(index, anchor_grads, losses, valid, contrast_grad):
            block = run_block(anchors, contrasts, index)
            if upstream_losses is None:
                upstream = tf.ones([block_size])
            else:
                upstream = _rows(upstream_losses, index * block_size, block_size)
            grad_anchor_block, grad_contrasts = block.backward(upstream)
            return (
                index + 1,
                anchor_grads.write(index, grad_anchor_block),
                losses.write(index, block.losses),
                valid.write(index, tf.cast(block.valid, tf.float32)),
                tuple(total + block_grad for total, block_grad in zip(contrast_grad, grad_contrasts)),
            )

        def array(*shape):
            return tf.TensorArray(tf.float32, size=num_blocks, element_shape=list(shape))

        # parallel_iterations=1: one block's [block, cols] intermediates alive at a time (the
        # default of 10 concurrent iterations multiplies the peak memory by up to 10 in graph mode).
        _, anchor_grads, losses, valid, contrast_grad = tf.while_loop(
            lambda index, *_: index < num_blocks,
            body,
            parallel_iterations=1,
            loop_vars=(
                tf.constant(0),
                array(block_size, anchors.shape[1]),
                array(block_size),
                array(block_size),
                tuple(tf.zeros_like(group) for group in contrasts),
            ),
        )
        return anchor_grads.concat(), contrast_grad, losses.concat(), valid.concat()

    @tf.custom_gradient
    def blocked(anchors, *contrasts):
        anchors, contrasts = tf.stop_gradient(anchors), _stop_gradients(contrasts)
        # One pass computes the losses and, since the gradient is linear in the upstream, the
        # gradient for an upstream of 1 on every valid anchor: a mean-reduced loss (the usual
        # case) then needs no second pass, so the blocked path costs the dense path's three
        # matmuls per block instead of four. Another upstream recomputes the blocks.
        unit_anchor_grads, unit_contrast_grad, losses, valid = value_and_grad_loop(anchors, contrasts, None)

        def grad(upstream_losses, unused_upstream_valid):
            is_valid = valid > 0.5
            high = tf.reduce_max(tf.where(is_valid, upstream_losses, -float("inf")))
            low = tf.reduce_min(tf.where(is_valid, upstream_losses, float("inf")))
            scale = tf.where(tf.reduce_any(is_valid), high, 0.0)
            grad_anchors, grad_contrasts = tf.cond(
                high <= low,  # One value on every valid anchor (or none valid).
                lambda: (scale * unit_anchor_grads, tuple(scale * group for group in unit_contrast_grad)),
                lambda: value_and_grad_loop(anchors, contrasts, upstream_losses)[:2],
            )
            return (grad_anchors, *grad_contrasts)

        # `valid` leaves as float32: custom_gradient outputs must be differentiable dtypes.
        return (losses, valid), grad

    padded_anchors = tf.pad(anchors, [[0, padding], [0, 0]])
    losses, valid = blocked(padded_anchors, *contrasts)
    return losses[:rows], valid[:rows] > 0.5
