"""Torch modules of skae: the encoder (optional conv stack, dense layers, code layer)
and its mirror image, the decoder.

This module knows torch only; nothing here imports scikit-learn. Networks are described by
an :class:`Architecture` (plain data, so it can be stored as JSON) and built on the ``meta``
device, then initialised from an explicit ``torch.Generator``: building a network never
touches torch's global random state.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": nn.Identity,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild an encoder/decoder pair.

    ``image_shape`` is ``(height, width, channels)``; rows of the data are the C-order
    flattening of that shape. It is only used when ``conv_filters`` is not empty.
    ``code_width`` is the width of the encoder's last layer (twice the code size for a
    variational encoder, which outputs the mean and the log-variance). The decoder multiplies
    its input by ``code_scale`` (a fixed factor, not a parameter).
    """

    n_features: int
    code_width: int | None
    code_size: int
    hidden_layer_sizes: tuple = ()
    conv_filters: tuple = ()
    kernel_size: int = 3
    image_shape: tuple | None = None
    activation: str = "relu"
    code_activation: str = "relu"
    code_scale: float = 1.0

    def to_dict(self):
        data = asdict(self)
        if data["code_scale"] == 1.0:  # files without the factor stay readable by older skae
            del data["code_scale"]
        return data

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        for key in ("hidden_layer_sizes", "conv_filters"):
            data[key] = tuple(data[key])
        if data["image_shape"] is not None:
            data["image_shape"] = tuple(data["image_shape"])
        return cls(**data)


def conv_geometry(image_shape, n_stages):
    """Spatial sizes ``[(h, w), ...]`` before each pooling stage and after the last one.

    Pooling is 2x2 with ceil mode, so odd sizes round up (7 -> 4) and the decoder upsamples
    back to exactly these sizes: any image size works without padding tricks. A dimension of
    size 1 (a 1-D signal) is never pooled.
    """
    height, width = image_shape[:2]
    sizes = [(height, width)]
    for _ in range(n_stages):
        height, width = (height + 1) // 2 if height > 1 else 1, (width + 1) // 2 if width > 1 else 1
        sizes.append((height, width))
    return sizes


def _kernel(size, image_hw):
    """Square kernels, but 1 wide along a unit dimension (a 1-D signal is ``(1, n, 1)``)."""
    return tuple(size if dim > 1 else 1 for dim in image_hw)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` in ceil mode, with windows (and strides) of 1 or 2 pixels per axis.

    Without gradients (``transform``, the code statistics), an input whose pooled axes have
    even sizes is pooled by the maxima of strided views, one axis at a time: the same values
    (NaN propagates as in ``max_pool2d``) without the argmax indices, which only the
    backward pass needs.
    """

    def __init__(self, window):
        if any(size not in (1, 2) for size in window):
            raise ValueError(f"MaxPool2d needs windows of 1 or 2 pixels, not {window}.")
        super().__init__(window, ceil_mode=True)

    def forward(self, x):
        pooled = [dim for dim, size in zip((2, 3), self.kernel_size) if size == 2]
        if torch.is_grad_enabled() or any(x.shape[dim] % 2 for dim in pooled):
            return super().forward(x)
        for dim in pooled:
            even, odd = (x[(slice(None),) * dim + (slice(start, None, 2),)] for start in (0, 1))
            x = torch.maximum(even, odd)
        return x


def _pool(image_hw):
    window = tuple(2 if dim > 1 else 1 for dim in image_hw)
    return MaxPool2d(window)


# Activations that never decrease: max-pooling commutes with them (GELU dips, so it does not).
_MONOTONE = {"relu", "tanh", "logistic", "identity", "leaky_relu", "elu", "softplus"}


class UpsampledConv2d(nn.Conv2d):
    """``Conv2d`` of its input upsampled 2x (nearest), computed at the input's resolution.

    Each of the four output pixels that one input pixel becomes sees the input through its
    own small kernel: the kernel's taps summed over the input pixels they fall on
    (sub-pixel convolution). So the convolution runs with ``4 * out_channels`` outputs on a
    quarter of the pixels and ``pixel_shuffle`` interleaves them: the same function as
    ``Upsample`` then ``Conv2d``, without the upsampled copy, and several times faster on
    the CPU for few output channels. On a GPU it upsamples then convolves: there cuDNN's
    convolution of the upsampled input is about 3x faster than the sub-pixel one
    (``benchmarks/levers.py --device cuda``). The parameters are those of the ``Conv2d`` it
    replaces. Odd square kernels, stride 1 and ``"same"`` zero padding only.
    """

    def __init__(self, in_channels, out_channels, kernel_size, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, padding="same", bias=bias)
        size = self.kernel_size[0]
        if self.kernel_size != (size, size) or size % 2 == 0:
            raise ValueError(f"UpsampledConv2d needs an odd square kernel, not {kernel_size}.")
        self.low_radius = (size // 2 + 1) // 2  # the taps' reach at the input's resolution

    def extra_repr(self):
        return "upsampled 2x, " + super().extra_repr()

    def forward(self, x):
        if x.device.type != "cpu":
            return super().forward(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
        return self._sub_pixel(x)

    def _sub_pixel(self, x):
        size, half, reach = self.kernel_size[0], self.kernel_size[0] // 2, self.low_radius
        # taps[s, r, a] = 1 where kernel tap a of output parity s lands: on input pixel
        # (s + a - half) // 2 relative to the output's (one small copy, no per-tap kernels)
        taps = torch.tensor(
            [[[float((s + a - half) // 2 + reach == r) for a in range(size)]
              for r in range(2 * reach + 1)] for s in range(2)],
            dtype=self.weight.dtype, device=self.weight.device)
        out, c_in = self.weight.shape[:2]
        weight = torch.einsum("sra,tqb,ocab->ostcrq", taps, taps, self.weight)
        weight = weight.reshape(4 * out, c_in, 2 * reach + 1, 2 * reach + 1)
        weight = weight.contiguous(memory_format=torch.channels_last)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        return nn.functional.pixel_shuffle(
            nn.functional.conv2d(x, weight, bias, padding=reach), 2)


def _upsample_conv(c_in, c_out, kernel, low_hw, high_hw):
    """Layers for ``Conv2d(Upsample(x))``: fused (sub-pixel) where that pays.

    The fused layer pays for few output channels (an image's 1 or 3: 3x faster on 2 CPU
    cores for the chapter's 16 -> 1 layer) and loses for 8 or more (on a GPU it computes
    the two steps apart). An ``nn.Identity``
    keeps the upsampling's place, so parameter names do not depend on the choice.
    """
    exact = all(high == 2 * low for low, high in zip(low_hw, high_hw))
    if c_out <= 4 and exact and kernel[0] == kernel[1] and kernel[0] % 2:
        return [nn.Identity(), UpsampledConv2d(c_in, c_out, kernel)]
    return [nn.Upsample(size=high_hw, mode="nearest"),
            nn.Conv2d(c_in, c_out, kernel, padding="same")]


class ImageView(nn.Module):
    """Reshape flat rows (C-order ``(h, w, c)``) to ``(n, c, h, w)`` and back."""

    def __init__(self, image_shape, to_image):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.to_image = to_image

    def forward(self, x):
        if self.to_image:
            return x.reshape(x.shape[0], *self.image_shape).permute(0, 3, 1, 2)
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


def _dense_stack(sizes, activation, last_activation):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        is_last = i == len(sizes) - 2
        layers.append(ACTIVATIONS[last_activation if is_last else activation]())
    return layers


def _conv_encoder(arch, last_activation):
    """The conv stages; the last one ends in ``last_activation`` (the code's, when its
    feature map is the code)."""
    channels = (arch.image_shape[2],) + tuple(arch.conv_filters)
    sizes = conv_geometry(arch.image_shape, len(arch.conv_filters))
    kernel = _kernel(arch.kernel_size, arch.image_shape[:2])
    activations = [arch.activation] * (len(channels) - 2) + [last_activation]
    layers = [ImageView(arch.image_shape, to_image=True)]
    for (c_in, c_out), hw, activation in zip(zip(channels[:-1], channels[1:]), sizes,
                                             activations):
        stage = [ACTIVATIONS[activation](), _pool(hw)]
        # a non-decreasing activation commutes with max-pooling: pooling first activates 1/4
        pool_first = activation in _MONOTONE
        layers += [nn.Conv2d(c_in, c_out, kernel, padding="same"),
                   *(reversed(stage) if pool_first else stage)]
    layers.append(nn.Flatten())
    return layers


def _conv_decoder(arch):
    sizes = conv_geometry(arch.image_shape, len(arch.conv_filters))
    kernel = _kernel(arch.kernel_size, arch.image_shape[:2])
    c_in, low_hw = arch.conv_filters[-1], sizes[-1]
    outputs = tuple(reversed(arch.conv_filters)) + (arch.image_shape[2],)
    layers = [nn.Unflatten(1, (c_in, *low_hw)),
              nn.Conv2d(c_in, outputs[0], kernel, padding="same")]
    c_in = outputs[0]
    for c_out, hw in zip(outputs[1:], reversed(sizes[:-1])):
        layers += [ACTIVATIONS[arch.activation](),
                   *_upsample_conv(c_in, c_out, kernel, low_hw, hw)]
        c_in, low_hw = c_out, hw
    layers.append(ImageView(arch.image_shape, to_image=False))
    return layers


def conv_output_size(image_shape, conv_filters):
    """Number of values in the flattened feature map of a conv stack (0 without one)."""
    if not conv_filters:
        return 0
    h, w = conv_geometry(image_shape, len(conv_filters))[-1]
    return conv_filters[-1] * h * w


class Encoder(nn.Sequential):
    """Conv stack (optional), dense hidden layers, then the code layer."""

    def __init__(self, arch):
        # without a code width, the last hidden layer or else the flattened feature map is
        # the code: it takes the code's activation
        feature_map_is_code = arch.code_width is None and not arch.hidden_layer_sizes
        layers = _conv_encoder(arch, arch.code_activation if feature_map_is_code
                               else arch.activation) if arch.conv_filters else []
        width = conv_output_size(arch.image_shape, arch.conv_filters) or arch.n_features
        code = () if arch.code_width is None else (arch.code_width,)
        sizes = (width,) + arch.hidden_layer_sizes + code
        layers += _dense_stack(sizes, arch.activation, arch.code_activation)
        super().__init__(*layers)

    @property
    def code_layer(self):
        """The last ``nn.Linear`` of the encoder (the one that produces the code)."""
        return [m for m in self if isinstance(m, nn.Linear)][-1]


class Decoder(nn.Sequential):
    """Mirror of :class:`Encoder`; outputs pre-activation values (logits for BCE)."""

    def __init__(self, arch):
        out_width = conv_output_size(arch.image_shape, arch.conv_filters) or arch.n_features
        if arch.code_width is None:  # mirror the hidden layers back to the feature map
            sizes = tuple(reversed((out_width,) + arch.hidden_layer_sizes))
        else:
            sizes = (arch.code_size,) + tuple(reversed(arch.hidden_layer_sizes)) + (out_width,)
        layers = []
        if len(sizes) > 1:
            last = arch.activation if arch.conv_filters else "identity"
            layers = _dense_stack(sizes, arch.activation, last)
            if not arch.conv_filters:
                layers = layers[:-1]  # linear output: the loss applies the link
        if arch.conv_filters:
            layers += _conv_decoder(arch)
        super().__init__(*layers)
        self.code_scale = arch.code_scale

    def forward(self, code):
        if self.code_scale != 1.0:
            code = code * self.code_scale
        for layer in self:
            code = layer(code)
        return code

    def effective_weights(self):
        """The weight tensors as the code sees them: the first one times ``code_scale``."""
        weights = [p for p in self.parameters() if p.dim() >= 2]
        if self.code_scale == 1.0 or not weights:
            return weights
        return [weights[0] * self.code_scale] + weights[1:]

    @property
    def output_layer(self):
        """The last ``nn.Linear`` or ``nn.Conv2d``: its bias is one per feature, or one per
        channel after a conv stack."""
        return [m for m in self if isinstance(m, (nn.Linear, nn.Conv2d))][-1]


def build_networks(arch, generator, device="cpu"):
    """Build and initialise ``(encoder, decoder)`` for ``arch``.

    Modules are created on the ``meta`` device (no global RNG draw), materialised on the CPU,
    initialised from ``generator`` (Glorot-uniform weights, zero biases, as Keras does), then
    moved to ``device``: the same generator gives the same weights on every device. Conv
    weights are stored channels-last, the layout of the data's rows.
    """
    networks = []
    for cls in (Encoder, Decoder):
        with torch.device("meta"):
            module = cls(arch).float()  # float32 whatever torch's default dtype
        try:
            module = module.to_empty(device="cpu")
        except RuntimeError as exc:  # torch's CPU allocator refused: far too many weights
            count = sum(p.numel() for p in module.parameters())
            raise MemoryError(
                f"Cannot allocate the {cls.__name__.lower()}'s {count:,} weights "
                f"({count * 4 / 2**30:,.3g} GiB of float32): make n_components or "
                "hidden_layer_sizes smaller.") from exc
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                nn.init.zeros_(layer.bias)
        # channels-last conv weights match the (n, h, w, c) rows: no reorder per convolution
        layout = torch.channels_last if arch.conv_filters else torch.preserve_format
        networks.append(module.to(device, memory_format=layout))
    return tuple(networks)
