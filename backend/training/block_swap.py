"""--blocks_to_swap: the last blocks of the denoiser live in host memory and visit the GPU one at a time.

sd-scripts' ModelOffloader (library/custom_offloading_utils.py) swaps weights between a GPU block and a
CPU block in place. Here only frozen base weights are swapped, so a block never has to be copied back:
its weights stay in (pinned) host memory for good, a device copy is made just before the block runs
and simply dropped after. Copies run on a side CUDA stream one block ahead (the next block in the
forward pass, the previous one in the backward pass), so they overlap the current block's compute.

When a block's weights are on the device:
- forward (training or not): loaded by a forward pre-hook, dropped by the forward hook;
- backward: loaded when the gradient of one of the block's outputs is ready (a tensor hook, before the
  block's backward runs), dropped when the gradient of one of its inputs is ready (its backward has
  finished: autograd runs a device's nodes newest first) and, in any case, when the backward ends
  (an autograd engine callback). A gradient-checkpointing recompute inside the backward finds the block
  loaded and leaves it so.

Autograd keeps what a layer's backward needs; for a Linear that is a view of the weight (`weight.t()`),
which would keep a dropped device copy alive until the backward and save nothing. So inside a swapped
block, F.linear on a swapped weight runs through `_FrozenLinear`, which saves the weight Parameter
itself: dropping its device copy frees the memory, loading it again before the backward brings it back
(sd-scripts gets the same by swapping weights in place into the same GPU buffers both ways).

What moves is a block's own parameters and buffers. A LoRA's weights are not in the block (the network
wraps the block's layers through their `forward`, backend/networks/module.py): they, their gradients and
the optimizer state never move.

Trained weights (a full fine-tune) move too, and only with --fused_backward_pass (preflight): the optimizer
steps each weight in its gradient hook, while the block is on the device, so its gradient and optimizer
state stay on the device and the weight's host copy stays the master. A block loaded in the backward is
written back to its host copy when it is dropped (a device-to-host copy on the compute stream; the next copy
to the device waits for it, and the end of the backward waits for all, so saving or EMA read current values).
`_TrainedLinear` keeps the input and the weight Parameter itself and returns the weight's gradient too.
sd-scripts' flux_train/sd3_train swap trained blocks the same way and need a fused optimizer step there too
(a plain step would meet host weights and device gradients).

KOHYA_BLOCK_SWAP_ON_CPU=1 runs the same logic on a CPU-only machine (tests): a dropped weight is an
empty tensor there, so a block used while it is not loaded fails loudly instead of silently working.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from backend.training.block_swap_options import swap_limit_problem, swap_support_problem

if TYPE_CHECKING:
    from backend.families.seam import ModelFamily


def swapped_flags(group_sizes: Sequence[int], counts: Sequence[int]) -> list[bool]:
    """Per block of the groups laid end to end: whether it is one of the last `count` of its group."""
    flags: list[bool] = []
    for size, count in zip(group_sizes, counts, strict=True):
        flags += [index >= size - count for index in range(size)]
    return flags


def _graph_task() -> int:
    """The id of the backward running this code, -1 outside one (PyTorch's own test, private but stable)."""
    current = getattr(torch._C, "_current_graph_task_id", None)
    return current() if current is not None else -1


def _in_backward() -> bool:
    """Whether autograd's engine is running this code (a backward, or a checkpoint's recompute in it)."""
    return _graph_task() != -1


def _tensors(values: Iterable[Any]) -> Iterable[torch.Tensor]:
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from _tensors(value)
        elif isinstance(value, dict):
            yield from _tensors(value.values())


def _needing_grad(values: Iterable[Any]) -> list[torch.Tensor]:
    return [t for t in _tensors(values) if t.requires_grad and t.grad_fn is not None]


def move_except(module: nn.Module, kept: Sequence[nn.Module], device: torch.device | str,
                dtype: torch.dtype | None) -> None:
    """`module.to(device, dtype)` except the modules in `kept`, which stay where they are (cast to `dtype`
    there, floating-point tensors only, as nn.Module.to): a swapped block never visits the device whole
    at placement. The kept blocks are taken out of their parents for the move, as sd-scripts does."""
    kept_ids = {id(block) for block in kept}
    slots = [(parent, name, child) for parent in module.modules() for name, child in parent._modules.items()
             if child is not None and id(child) in kept_ids]
    for parent, name, _ in slots:
        parent._modules[name] = None
    try:
        module.to(device=device, dtype=dtype) if dtype is not None else module.to(device=device)
    finally:
        for parent, name, child in slots:
            parent._modules[name] = child
    if dtype is not None:
        for block in kept:
            block.to(dtype=dtype)


class _FrozenLinear(torch.autograd.Function):
    """F.linear with a frozen weight that saves the weight Parameter itself for the backward (not a view
    of its current storage), so the swap can drop and reload the weight's device copy in between."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return F.linear(x, weight, bias)  # under the caller's autocast, as the plain call

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (weight,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        # As F.linear's own backward does it (reshape, then one matrix product), so the numbers are the same
        # to the bit; autograd casts the result to the input's dtype.
        flat = grad.reshape(-1, grad.shape[-1]).mm(weight.to(grad.dtype))
        return flat.view(*grad.shape[:-1], flat.shape[-1]), None, None


class _TrainedLinear(torch.autograd.Function):
    """F.linear with a trained weight that saves the weight Parameter itself (as `_FrozenLinear`) and the
    input, and returns the gradients of the input, the weight and the bias."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = flat.mm(weight.to(grad.dtype)).view(*grad.shape[:-1], weight.shape[1])
        if ctx.needs_input_grad[1]:  # autograd casts it to the weight's dtype (float32 master weights)
            grad_weight = flat.t().mm(x.reshape(-1, x.shape[-1]).to(grad.dtype))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = flat.sum(0)
        return grad_x, grad_weight, grad_bias


class _SwappedLinears(TorchFunctionMode):
    """Routes F.linear on one block's swapped weights through `_FrozenLinear` (frozen weights) or
    `_TrainedLinear` (trained ones) while the block runs."""

    def __init__(self, weights: set[int], trained: set[int] | None = None) -> None:
        super().__init__()
        self.weights = weights
        self.trained = trained or set()

    def __torch_function__(self, func: Any, types: Any, positional: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and torch.is_grad_enabled():
            x = positional[0] if positional else kwargs["input"]
            weight = positional[1] if len(positional) > 1 else kwargs["weight"]
            bias = positional[2] if len(positional) > 2 else kwargs.get("bias")
            if id(weight) in self.weights and (bias is None or not bias.requires_grad):
                return _FrozenLinear.apply(x, weight, bias)
            if id(weight) in self.trained:
                return _TrainedLinear.apply(x, weight, bias)
        return func(*positional, **kwargs)


@dataclass
class _Block:
    """One swapped block: its tensors, their host copies and what stands in while not loaded."""

    tensors: list[torch.Tensor]
    homes: list[torch.Tensor]
    placeholders: list[torch.Tensor]
    weights: set[int] = field(default_factory=set)  # ids of the frozen swapped Parameters (for _SwappedLinears)
    trained: list[bool] = field(default_factory=list)  # per tensor: trained (written back after its step)
    loaded: bool = False
    pending: tuple[Any, list[torch.Tensor]] | None = None  # (copy-done event, device copies) of a prefetch
    dirty: bool = False  # loaded in a backward with trained tensors: their steps are to be written back
    written: Any = None  # CUDA: the event after the last write-back's copies

    @property
    def trained_weights(self) -> set[int]:
        return {id(t) for t, trained in zip(self.tensors, self.trained, strict=True)
                if trained and isinstance(t, nn.Parameter)}


@dataclass
class BlockSwapper:
    """Keeps the swapped ones of `blocks` (forward order) off the device except while they run.

    `moves` records ("load" | "prefetch" | "evict", block index) in order, for tests and debugging.
    `trained`: also swap the blocks' tensors that require gradients (a fused fine-tune); otherwise they stay
    on the device (a network's own tensors, should a network put any inside a block)."""

    blocks: Sequence[nn.Module]
    swapped: Sequence[bool]
    device: torch.device
    moves: list[tuple[str, int]] = field(default_factory=list)
    record_moves: bool = False
    trained: bool = False

    def __post_init__(self) -> None:
        if len(self.blocks) != len(self.swapped):
            raise ValueError("one swapped flag per block")
        self.on_cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.on_cuda else None
        self.state: dict[int, _Block] = {}
        self.handles: list[Any] = []
        self._callback_task: int | None = None
        self._restores: list[tuple[nn.Module, Any]] = []

    # -- setting up -------------------------------------------------------------------------------
    def install(self) -> BlockSwapper:
        """Move the swapped blocks' frozen weights to host memory (pinned on CUDA) and hook every block."""
        for index, (block, swapped) in enumerate(zip(self.blocks, self.swapped, strict=True)):
            if swapped:
                self.state[index] = self._take(block)
                self._route_linears(block, self.state[index].weights, self.state[index].trained_weights)
            self.handles.append(block.register_forward_pre_hook(self._pre_hook(index), with_kwargs=True))
            self.handles.append(block.register_forward_hook(self._post_hook(index)))
        return self

    def _take(self, block: nn.Module) -> _Block:
        tensors = [t for t in (*block.parameters(), *block.buffers()) if self.trained or not t.requires_grad]
        trained = [t.requires_grad for t in tensors]
        homes, placeholders = [], []
        for tensor, is_trained in zip(tensors, trained, strict=True):
            home = tensor.data.to("cpu")
            if self.on_cuda:
                home = home.pin_memory()  # asynchronous copies; sd-scripts keeps plain CPU tensors
                placeholder = home
            elif is_trained:  # the master, read outside the block's runs (saving, EMA)
                placeholder = home
            else:  # KOHYA_BLOCK_SWAP_ON_CPU: a stand-in that no computation can use by mistake
                placeholder = home.new_empty(0)
            homes.append(home)
            placeholders.append(placeholder)
            tensor.data = placeholder
        frozen = {id(t) for t, is_trained in zip(tensors, trained, strict=True)
                  if not is_trained and isinstance(t, nn.Parameter)}
        return _Block(tensors, homes, placeholders, frozen, trained)

    def _route_linears(self, block: nn.Module, weights: set[int], trained: set[int]) -> None:
        """The block's forward runs under `_SwappedLinears` (an instance attribute, as a LoRA's wrapping is)."""
        inner = block.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            with _SwappedLinears(weights, trained):
                return inner(*args, **kwargs)

        block.forward = forward
        self._restores.append((block, inner))

    def remove(self) -> None:
        """Unhook and leave every swapped block's weights in host memory (for tests and teardown)."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        for block, inner in self._restores:
            block.forward = inner
        self._restores.clear()
        for index in list(self.state):
            self._evict(index)
            for tensor, home in zip(self.state[index].tensors, self.state[index].homes, strict=True):
                tensor.data = home

    # -- moving ---------------------------------------------------------------------------------
    def _note(self, what: str, index: int) -> None:
        if self.record_moves:
            self.moves.append((what, index))

    def _copies(self, block: _Block) -> list[torch.Tensor]:
        if not self.on_cuda:
            # A trained tensor's copy is stepped apart from its master, as on a GPU, so the write-back is real.
            return [home.clone() if trained else home for home, trained in zip(block.homes, block.trained, strict=True)]
        return [home.to(self.device, non_blocking=True) for home in block.homes]

    def _prefetch(self, index: int) -> None:
        block = self.state.get(index)
        if block is None or block.loaded or block.pending is not None:
            return
        self._note("prefetch", index)
        if self.stream is None:
            block.pending = (None, self._copies(block))
            return
        with torch.cuda.stream(self.stream):
            if block.written is not None:  # the last write-back into these host copies is done first
                self.stream.wait_event(block.written)
            copies = self._copies(block)
            event = torch.cuda.Event()
            event.record(self.stream)
        block.pending = (event, copies)

    def _load(self, index: int) -> None:
        block = self.state[index]
        if block.loaded:
            return
        self._note("load", index)
        if block.pending is not None:
            event, copies = block.pending
            block.pending = None
            if event is not None:
                current = torch.cuda.current_stream(self.device)
                current.wait_event(event)
                for copy in copies:
                    copy.record_stream(current)  # made on the side stream, used and freed on this one
        else:
            copies = self._copies(block)
        for tensor, copy in zip(block.tensors, copies, strict=True):
            tensor.data = copy
        block.loaded = True
        if any(block.trained) and _in_backward():
            block.dirty = True  # its weights are stepped in this backward (fused), then written back

    def _evict(self, index: int) -> None:
        block = self.state[index]
        if not block.loaded and block.pending is None:
            return
        self._note("evict", index)
        block.pending = None
        if block.loaded:
            if block.dirty:
                self._write_back(block)
            for tensor, placeholder in zip(block.tensors, block.placeholders, strict=True):
                tensor.data = placeholder  # the device copy is freed; the host copy is current
            block.loaded = False

    def _write_back(self, block: _Block) -> None:
        """The stepped trained tensors into their host copies (on the compute stream, after the steps)."""
        for tensor, home, trained in zip(block.tensors, block.homes, block.trained, strict=True):
            if trained:
                home.copy_(tensor.data, non_blocking=self.on_cuda)
        if self.on_cuda:
            block.written = torch.cuda.Event()
            block.written.record(torch.cuda.current_stream(self.device))
        block.dirty = False

    def evict_all(self) -> None:
        for index in self.state:
            self._evict(index)

    # -- hooks ----------------------------------------------------------------------------------
    def _pre_hook(self, index: int):
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            in_backward = _in_backward()
            if index in self.state:
                self._load(index)
                if torch.is_grad_enabled():
                    # Its backward is over when an input's gradient is ready (a checkpoint's recompute in
                    # a reentrant backward included); hooks on a non-reentrant recompute never fire.
                    for tensor in _needing_grad((args, kwargs)):
                        tensor.register_hook(self._input_grad_hook(index))
            if not in_backward:
                self._prefetch(index + 1)
        return hook

    def _post_hook(self, index: int):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if _in_backward():
                return  # a recompute in the backward: the block's backward is about to use the weights
            if index not in self.state:
                if index - 1 in self.state and torch.is_grad_enabled():  # the backward's next block is swapped
                    for tensor in _needing_grad((output,)):
                        tensor.register_hook(self._prefetch_hook(index - 1))
                return
            if torch.is_grad_enabled():
                for tensor in _needing_grad((output,)):
                    tensor.register_hook(self._output_grad_hook(index))
            self._evict(index)
        return hook

    def _output_grad_hook(self, index: int):
        def hook(grad: torch.Tensor) -> None:
            task = _graph_task()
            if task != self._callback_task:
                self._callback_task = task
                torch.autograd.Variable._execution_engine.queue_callback(self._after_backward)
            # The blocks after this one are done (this gradient is their input's): dropped before the next
            # copy starts, so at most two swapped blocks are on the device at a time.
            for later in self.loaded_blocks:
                if later > index:
                    self._evict(later)
            self._load(index)
            self._prefetch(index - 1)
        return hook

    def _prefetch_hook(self, index: int):
        def hook(grad: torch.Tensor) -> None:
            self._prefetch(index)
        return hook

    def _input_grad_hook(self, index: int):
        def hook(grad: torch.Tensor) -> None:
            self._evict(index)
        return hook

    def _after_backward(self) -> None:
        self._callback_task = None
        self.evict_all()
        for block in self.state.values():  # host reads (saving, EMA, the next load on the CPU) see the steps
            if block.written is not None:
                block.written.synchronize()
                block.written = None

    @property
    def host_bytes(self) -> int:
        """The RAM the swapped blocks' weights take (pinned on CUDA, which may round allocations up)."""
        return sum(home.numel() * home.element_size() for block in self.state.values() for home in block.homes)

    @property
    def loaded_blocks(self) -> list[int]:
        return [index for index, block in self.state.items() if block.loaded]


def swapper_for(groups: Sequence[Sequence[nn.Module]], counts: Sequence[int], device: torch.device,
                record_moves: bool = False, trained: bool = False) -> BlockSwapper:
    """A swapper over the groups laid end to end (FLUX.1: double then single blocks), not yet installed."""
    blocks = [block for group in groups for block in group]
    flags = swapped_flags([len(group) for group in groups], counts)
    return BlockSwapper(blocks, flags, device, record_moves=record_moves, trained=trained)


def optimizer_state_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Optimizer state of weights that wait in host memory onto `device`, where their steps run (fused, while
    the block is loaded): loading a saved state (--resume) puts each state where its weight is, in RAM."""
    if device.type == "cpu":
        return
    for group in optimizer.param_groups:
        # torch keeps "step" on the CPU unless the optimizer is fused or capturable (load_state_dict does too).
        step_on_device = bool(group.get("fused") or group.get("capturable"))
        for param in group["params"]:
            if param.device.type != "cpu" or param not in optimizer.state:
                continue
            state = optimizer.state[param]
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and (key != "step" or step_on_device):
                    state[key] = value.to(device)


class BlockSwapError(ValueError):
    """--blocks_to_swap cannot be used with this model (unsupported family, or too many blocks)."""


@dataclass(frozen=True)
class SwapPlan:
    """Which blocks `--blocks_to_swap N` puts in host memory: the family's groups and the count of each."""

    groups: list[list[nn.Module]]
    counts: list[int]

    @property
    def blocks(self) -> list[nn.Module]:
        """The swapped blocks themselves (kept off the device at placement)."""
        return [block for group, count in zip(self.groups, self.counts, strict=True)
                for block in group[len(group) - count:]]

    def swapper(self, device: torch.device, record_moves: bool = False, trained: bool = False) -> BlockSwapper:
        return swapper_for(self.groups, self.counts, device, record_moves, trained)


def swap_plan(family: ModelFamily, denoiser: nn.Module, blocks_to_swap: int, label: str = "") -> SwapPlan:
    """The family's split of N swapped blocks over its groups, checked against its limit. `label`: the
    model type in messages (FLUX.1 [dev]; default: the family's first)."""
    groups = family.swap_groups(denoiser)
    label = label or family.declarations[0].label
    if not groups:
        raise BlockSwapError(swap_support_problem(family, label))
    sizes = [len(group) for group in groups]
    problem = swap_limit_problem(family, label, sizes, blocks_to_swap)
    if problem:
        raise BlockSwapError(problem)
    return SwapPlan(groups, family.blocks_to_swap_split(blocks_to_swap, sizes))
