"""PyTorch mirror of OpenGait's SwinGait, with OpenGait's state-dict keys.

Written from OpenGait's swingait.py and the structure of OpenGait's
`modeling/models/swingait.py` (module names `layer0..2`, `transformer.
patch_embed.{proj,norm}`, `transformer.layers.{i}.blocks.{j}.{norm1,attn.
{relative_position_bias_table,relative_position_index,qkv,proj},norm2,mlp.
{fc1,fc2}}`, `transformer.layers.0.downsample.{0,1}`, `transformer.norm`,
`FCs`, `BNNecks`). The stem reuses the DeepGaitV2 mirror's blocks. The Swin
part runs one sequence at a time in OpenGait's own layout (window partition
by view/permute, the -100 region mask built by slice assignment), so it
shares no code or layout with `gait_jax.models.swin3d`. `embed_dim` and the
FCs' input (512 in OpenGait, hard-coded) are parameters here so that a tiny
network can be built. Stochastic depth follows timm's `drop_path`.
"""

import torch
from torch import nn
import torch.nn.functional as F

import torch_mirrors
import torch_mirrors_deepgaitv2 as dgv2
from torch_mirrors import PackSequenceWrapper
from torch_mirrors import SeparateBNNecks
from torch_mirrors import SeparateFCs
from torch_mirrors import SetBlockWrapper


def _fit_window(size, window, shift):
  """Window/shift shrunk where the input is not larger than the window."""
  window, shift = list(window), list(shift)
  for i, n in enumerate(size):
    if n <= window[i]:
      window[i], shift[i] = n, 0
  return tuple(window), tuple(shift)


def _windows(x, ws):
  """(B, D, H, W, C) -> (B * nW, N, C)."""
  b, d, h, w, c = x.shape
  x = x.view(b, d // ws[0], ws[0], h // ws[1], ws[1], w // ws[2], ws[2], c)
  return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, ws[0] * ws[1] * ws[2],
                                                   c)


def _unwindows(x, ws, b, d, h, w):
  """(B * nW, N, C) -> (B, D, H, W, C)."""
  x = x.view(b, d // ws[0], h // ws[1], w // ws[2], ws[0], ws[1], ws[2], -1)
  return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def shift_mask(dp, hp, wp, ws, shift):
  """(nW, N, N) additive mask, 0 within a region and -100 across regions."""
  img = torch.zeros(1, dp, hp, wp, 1)
  cnt = 0
  cuts = [(slice(-k), slice(-k, -s), slice(-s, None))
          for k, s in zip(ws, shift)]
  for sd in cuts[0]:
    for sh in cuts[1]:
      for sw in cuts[2]:
        img[:, sd, sh, sw, :] = cnt
        cnt += 1
  ids = _windows(img, ws).squeeze(-1)  # (nW, N)
  diff = ids.unsqueeze(1) - ids.unsqueeze(2)
  return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def drop_path(x, rate, training):
  if rate == 0.0 or not training:
    return x
  keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - rate)
  return x * keep / (1 - rate)


class Mlp(nn.Module):

  def __init__(self, dim, hidden):
    super().__init__()
    self.fc1 = nn.Linear(dim, hidden)
    self.act = nn.GELU()
    self.fc2 = nn.Linear(hidden, dim)

  def forward(self, x):
    return self.fc2(self.act(self.fc1(x)))


class WindowAttention3D(nn.Module):

  def __init__(self, dim, window, heads):
    super().__init__()
    self.heads = heads
    self.scale = (dim // heads) ** -0.5
    wd, wh, ww = window
    self.relative_position_bias_table = nn.Parameter(
        torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), heads))
    grid = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh),
                                      torch.arange(ww), indexing='ij'))
    flat = grid.flatten(1)  # (3, N)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wd - 1
    rel[:, :, 1] += wh - 1
    rel[:, :, 2] += ww - 1
    rel[:, :, 0] *= (2 * wh - 1) * (2 * ww - 1)
    rel[:, :, 1] *= 2 * ww - 1
    self.register_buffer('relative_position_index', rel.sum(-1))
    self.qkv = nn.Linear(dim, 3 * dim, bias=True)
    self.proj = nn.Linear(dim, dim)

  def forward(self, x, mask=None):  # x (B_, N, C)
    b, n, c = x.shape
    qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B_, heads, N, hd)
    attn = (q * self.scale) @ k.transpose(-2, -1)
    index = self.relative_position_index[:n, :n].reshape(-1)
    bias = self.relative_position_bias_table[index].reshape(n, n, -1)
    attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
    if mask is not None:
      nw = mask.shape[0]
      attn = attn.view(b // nw, nw, self.heads, n, n) + mask[None, :, None]
      attn = attn.view(-1, self.heads, n, n)
    attn = attn.softmax(-1)
    return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class SwinTransformerBlock3D(nn.Module):

  def __init__(self, dim, heads, window, shift, drop_path_rate):
    super().__init__()
    self.window, self.shift, self.rate = window, shift, drop_path_rate
    self.norm1 = nn.LayerNorm(dim)
    self.attn = WindowAttention3D(dim, window, heads)
    self.norm2 = nn.LayerNorm(dim)
    self.mlp = Mlp(dim, 4 * dim)

  def forward(self, x, mask):  # x (B, D, H, W, C)
    b, d, h, w, _ = x.shape
    ws, shift = _fit_window((d, h, w), self.window, self.shift)
    y = self.norm1(x)
    pads = [(k - s % k) % k for s, k in zip((d, h, w), ws)]
    y = F.pad(y, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
    dp, hp, wp = y.shape[1:4]
    if any(shift):
      y = torch.roll(y, [-s for s in shift], dims=(1, 2, 3))
    out = self.attn(_windows(y, ws), mask if any(shift) else None)
    y = _unwindows(out, ws, b, dp, hp, wp)
    if any(shift):
      y = torch.roll(y, list(shift), dims=(1, 2, 3))
    y = y[:, :d, :h, :w].contiguous()
    x = x + drop_path(y, self.rate, self.training)
    return x + drop_path(self.mlp(self.norm2(x)), self.rate, self.training)


class BasicLayer(nn.Module):

  def __init__(self, dim, depth, heads, window, rates, double):
    super().__init__()
    self.window = tuple(window)
    self.shift = tuple(k // 2 for k in window)
    self.blocks = nn.ModuleList([
        SwinTransformerBlock3D(dim, heads, self.window,
                               (0, 0, 0) if j % 2 == 0 else self.shift,
                               rates[j]) for j in range(depth)])
    if double:
      self.downsample = nn.Sequential(nn.LayerNorm(dim),
                                      nn.Linear(dim, 2 * dim, bias=False))
    else:  # OpenGait: an identity lambda (no state-dict keys).
      self.downsample = nn.Identity()

  def forward(self, x):  # (B, C, D, H, W)
    _, _, d, h, w = x.shape
    ws, shift = _fit_window((d, h, w), self.window, self.shift)
    padded = [-(-s // k) * k for s, k in zip((d, h, w), ws)]
    mask = shift_mask(*padded, ws, shift)
    x = x.permute(0, 2, 3, 4, 1)
    for blk in self.blocks:
      x = blk(x, mask)
    return self.downsample(x).permute(0, 4, 1, 2, 3)


class PatchEmbed3D(nn.Module):

  def __init__(self, patch, cin, dim):
    super().__init__()
    self.patch = patch
    self.proj = nn.Conv3d(cin, dim, patch, patch)
    self.norm = nn.LayerNorm(dim)

  def forward(self, x):  # (B, C, D, H, W)
    d, h, w = x.shape[2:]
    p = self.patch
    x = F.pad(x, (0, (-w) % p[2], 0, (-h) % p[1], 0, (-d) % p[0]))
    x = self.proj(x)
    return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class SwinTransformer3D(nn.Module):

  def __init__(self, cin, dim=256, depths=(4, 2), heads=(16, 32),
               window=(3, 3, 5), patch=(1, 2, 2), drop_path_rate=0.1):
    super().__init__()
    self.patch_embed = PatchEmbed3D(tuple(patch), cin, dim)
    rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
    self.layers = nn.ModuleList()
    start = 0
    for i, depth in enumerate(depths):
      self.layers.append(BasicLayer(dim * 2**i, depth, heads[i], window,
                                    rates[start:start + depth], i == 0))
      start += depth
    self.norm = nn.LayerNorm(2 * dim)

  def forward(self, x):
    x = self.patch_embed(x)
    for layer in self.layers:
      x = layer(x)
    return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class SwinGait(nn.Module):
  """OpenGait's SwinGait (`build_network` + `init_parameters`)."""

  make_layer = dgv2.DeepGaitV2.make_layer

  def __init__(self, layers=(1, 4, 4, 2), channels=(64, 128), class_num=3000,
               embed_dim=256, heads=(16, 32), hidden=256,
               drop_path_rate=0.1):
    super().__init__()
    self.inplanes = channels[0]
    self.layer0 = SetBlockWrapper(nn.Sequential(
        dgv2.conv3x3(1, channels[0]), nn.BatchNorm2d(channels[0]),
        nn.ReLU(inplace=True)))
    self.layer1 = SetBlockWrapper(self.make_layer(
        dgv2.BasicBlock2D, channels[0], [1, 1], layers[0], '2d'))
    self.layer2 = self.make_layer(dgv2.BasicBlockP3D, channels[1], [2, 2],
                                  layers[1], 'p3d')
    self.ulayer = SetBlockWrapper(nn.UpsamplingBilinear2d(size=(30, 20)))
    self.transformer = SwinTransformer3D(
        channels[1], embed_dim, layers[2:], heads,
        drop_path_rate=drop_path_rate)
    self.FCs = SeparateFCs(16, 2 * embed_dim, hidden)
    self.BNNecks = SeparateBNNecks(16, hidden, class_num)
    self.TP = PackSequenceWrapper(torch_mirrors.temporal_max)
    init_parameters(self)

  def forward(self, inputs):
    ipts, labs, _, _, seqL = inputs  # pylint: disable=invalid-name
    sils = ipts[0].unsqueeze(1)  # [n, 1, s, h, w]
    out = self.ulayer(self.layer2(self.layer1(self.layer0(sils))))
    out = self.transformer(out)  # [n, c, s, 15, 10]
    outs = self.TP(out, seqL, options={'dim': 2})[0]  # [n, c, h, w]
    feat = torch_mirrors.hpp(outs, (15,))  # [n, c, 15]
    feat = torch.cat([feat, feat[:, :, -1:].clone().detach()], -1)
    embed_1 = self.FCs(feat)  # [n, c, 16]
    _, logits = self.BNNecks(embed_1)
    embed_1, logits = embed_1[:, :, :-1], logits[:, :, :-1]
    return {
        'training_feat': {
            'triplet': {'embeddings': embed_1, 'labels': labs},
            'softmax': {'logits': logits, 'labels': labs}},
        'visual_summary': {},
        'inference_feat': {'embeddings': embed_1}}


def _trunc_normal(tensor, std=0.02):
  with torch.no_grad():
    return tensor.normal_(0, std).clamp_(-2.0, 2.0)


def init_parameters(model):
  """SwinGait.init_parameters (trunc-normal Linears; BaseModel's others)."""
  for m in model.modules():
    if isinstance(m, nn.Linear):
      _trunc_normal(m.weight)
      if m.bias is not None:
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
      nn.init.ones_(m.weight)
      nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
      nn.init.xavier_uniform_(m.weight)
      if m.bias is not None:
        nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
      nn.init.normal_(m.weight, 1.0, 0.02)
      nn.init.zeros_(m.bias)
    elif isinstance(m, WindowAttention3D):
      _trunc_normal(m.relative_position_bias_table)
  return model


def randomise(module, seed):
  """Non-trivial BatchNorm/LayerNorm state, bias tables, Linear weights."""
  dgv2.randomise(module, seed)
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, nn.LayerNorm):
        m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=gen))
        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
      elif isinstance(m, nn.Linear):
        fan_in = m.weight.shape[1]
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) /
                       fan_in**0.5)
        if m.bias is not None:
          m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
      elif isinstance(m, WindowAttention3D):
        table = m.relative_position_bias_table
        table.copy_(0.5 * torch.randn(table.shape, generator=gen))
  return module
