"""PyTorch mirrors of OpenGait's GaitSet, GaitPart, GaitGL, Baseline, GaitBase.

Written from OpenGait's layer definitions:
same state-dict keys and shapes, same initialisation (Xavier-uniform convs,
BatchNorm weight ~ N(1, 0.02), Xavier-uniform `fc_bin` with PyTorch's 3-D fan
rule) and the same forward semantics, in OpenGait's `[n, c, s, h, w]` layout.
Every model follows OpenGait's `BaseModel.forward` interface: it takes
`(ipts, labs, typs, vies, seqL)` and returns `training_feat`, `visual_summary`
and `inference_feat`. Batches are unpadded (`seqL` may be None or OpenGait's
`[[len, ...]]` for the set/temporal pooling).
"""

import copy

import torch
from torch import nn
from torch.nn import functional as F

# ------------------------------- blocks -------------------------------------


class BasicConv1d(nn.Module):

  def __init__(self, cin, cout, k, stride=1, padding=0):
    super().__init__()
    self.conv = nn.Conv1d(cin, cout, k, stride, padding, bias=False)

  def forward(self, x):
    return self.conv(x)


class BasicConv2d(nn.Module):

  def __init__(self, cin, cout, k, stride=1, padding=0):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)

  def forward(self, x):
    return self.conv(x)


class BasicConv3d(nn.Module):

  def __init__(self, cin, cout, k=(3, 3, 3), stride=(1, 1, 1),
               padding=(1, 1, 1)):
    super().__init__()
    self.conv3d = nn.Conv3d(cin, cout, k, stride, padding, bias=False)

  def forward(self, x):
    return self.conv3d(x)


class FocalConv2d(nn.Module):
  """The same conv on horizontal strips of h // 2**halving rows."""

  def __init__(self, cin, cout, k, halving, stride=1, padding=0):
    super().__init__()
    self.halving = halving
    self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)

  def forward(self, x):
    if self.halving == 0:
      return self.conv(x)
    rows = int(x.size(2) // 2**self.halving)
    return torch.cat([self.conv(z) for z in x.split(rows, 2)], 2)


class SetBlockWrapper(nn.Module):
  """Applies a frame-level block to [n, c, s, ...] frame by frame."""

  def __init__(self, block):
    super().__init__()
    self.forward_block = block

  def forward(self, x):
    n, c, s = x.shape[:3]
    frames = x.transpose(1, 2).reshape(n * s, c, *x.shape[3:])
    y = self.forward_block(frames)
    return y.reshape(n, s, *y.shape[1:]).transpose(1, 2).contiguous()


class PackSequenceWrapper(nn.Module):
  """Pools each sequence of a packed batch separately (OpenGait's seqL)."""

  def __init__(self, pooling_func):
    super().__init__()
    self.pooling_func = pooling_func

  def forward(self, seqs, seq_len=None, dim=2, options=None):
    options = options or {}
    if seq_len is None:
      return self.pooling_func(seqs, **options)
    outs, start = [], 0
    for length in seq_len[0]:
      length = int(length)
      outs.append(self.pooling_func(seqs.narrow(dim, start, length),
                                    **options))
      start += length
    if isinstance(outs[0], tuple):
      return [torch.cat(list(z)) for z in zip(*outs)]
    return torch.cat(outs)


def temporal_max(x, dim=2):
  return torch.max(x, dim=dim)


def hpp(x, bins=(16, 8, 4, 2, 1)):
  """[n, c, h, w] -> [n, c, sum(bins)]: mean + max over row bins."""
  n, c = x.shape[:2]
  feats = []
  for b in bins:
    z = x.reshape(n, c, b, -1)
    feats.append(z.mean(-1) + z.max(-1)[0])
  return torch.cat(feats, -1)


class HorizontalPoolingPyramid(nn.Module):

  def __init__(self, bins):
    super().__init__()
    self.bins = bins

  def forward(self, x):
    return hpp(x, self.bins)


class SeparateFCs(nn.Module):

  def __init__(self, parts, cin, cout):
    super().__init__()
    self.fc_bin = nn.Parameter(
        nn.init.xavier_uniform_(torch.zeros(parts, cin, cout)))

  def forward(self, x):  # [n, c, p]
    out = x.permute(2, 0, 1).contiguous().matmul(self.fc_bin)  # [p, n, cout]
    return out.permute(1, 2, 0).contiguous()


class SeparateBNNecks(nn.Module):
  """Channel-major BN over C * P features, then cosine classifiers."""

  def __init__(self, parts, cin, classes):
    super().__init__()
    self.fc_bin = nn.Parameter(
        nn.init.xavier_uniform_(torch.zeros(parts, cin, classes)))
    self.bn1d = nn.BatchNorm1d(cin * parts)

  def forward(self, x):  # [n, c, p]
    n, c, p = x.shape
    x = self.bn1d(x.reshape(n, c * p)).reshape(n, c, p)
    feat = F.normalize(x.permute(2, 0, 1).contiguous(), dim=-1)  # [p, n, c]
    logits = feat.matmul(F.normalize(self.fc_bin, dim=1))  # [p, n, K]
    return feat.permute(1, 2, 0), logits.permute(1, 2, 0)


def init_parameters(model):
  """OpenGait's BaseModel.init_parameters."""
  for m in model.modules():
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
      nn.init.xavier_uniform_(m.weight)
      if m.bias is not None:
        nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
      if m.affine:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
  return model


class _Mirror(nn.Module):
  """OpenGait's input/output conventions around `compute`."""

  def forward(self, inputs):
    ipts, labs, _, _, seqL = inputs  # pylint: disable=invalid-name
    sils = ipts[0].unsqueeze(1)  # [n, 1, s, h, w]
    embed, logits = self.compute(sils, seqL)
    training_feat = {'triplet': {'embeddings': embed, 'labels': labs}}
    if logits is not None:
      training_feat['softmax'] = {'logits': logits, 'labels': labs}
    return {'training_feat': training_feat, 'visual_summary': {},
            'inference_feat': {'embeddings': embed}}


# ------------------------------- GaitSet ------------------------------------


def _set_block(cin, cout, k, pool):
  mods = [BasicConv2d(cin, cout, k, 1, k // 2), nn.LeakyReLU(inplace=True),
          BasicConv2d(cout, cout, 3, 1, 1), nn.LeakyReLU(inplace=True)]
  if pool:
    mods.append(nn.MaxPool2d(2, 2))
  return nn.Sequential(*mods)


class GaitSet(_Mirror):

  def __init__(self, in_channels=(1, 32, 64, 128), hidden_dim=256,
               bins=(16, 8, 4, 2, 1)):
    super().__init__()
    c = in_channels
    b1 = _set_block(c[0], c[1], 5, True)
    b2 = _set_block(c[1], c[2], 3, True)
    b3 = _set_block(c[2], c[3], 3, False)
    self.gl_block2 = copy.deepcopy(b2)
    self.gl_block3 = copy.deepcopy(b3)
    self.set_block1 = SetBlockWrapper(b1)
    self.set_block2 = SetBlockWrapper(b2)
    self.set_block3 = SetBlockWrapper(b3)
    self.set_pooling = PackSequenceWrapper(temporal_max)
    self.bins = bins
    self.Head = SeparateFCs(2 * sum(bins), c[3], hidden_dim)
    init_parameters(self)

  def compute(self, sils, seqL):  # pylint: disable=invalid-name
    outs = self.set_block1(sils)
    gl = self.gl_block2(self.set_pooling(outs, seqL)[0])
    outs = self.set_block2(outs)
    gl = gl + self.set_pooling(outs, seqL)[0]
    gl = self.gl_block3(gl)
    outs = self.set_block3(outs)
    outs = self.set_pooling(outs, seqL)[0]
    gl = gl + outs
    feat = torch.cat([hpp(outs, self.bins), hpp(gl, self.bins)], -1)
    return self.Head(feat), None


# --------------------------- Plain / GaitPart -------------------------------


class Plain(nn.Module):

  def __init__(self, layers_cfg, in_channels=1):
    super().__init__()
    mods, cin = [], in_channels
    for i, spec in enumerate(layers_cfg):
      if spec == 'M':
        mods.append(nn.MaxPool2d(2, 2))
        continue
      parts = spec.split('-')
      cout = int(parts[1])
      k, pad = (5, 2) if i == 0 else (3, 1)
      if parts[0] == 'BC':
        mods.append(BasicConv2d(cin, cout, k, 1, pad))
      else:
        mods.append(FocalConv2d(cin, cout, k, int(parts[2]), 1, pad))
      mods.append(nn.LeakyReLU(inplace=True))
      cin = cout
    self.feature = nn.Sequential(*mods)

  def forward(self, x):
    return self.feature(x)


class TemporalFeatureAggregator(nn.Module):

  def __init__(self, in_channels, squeeze=4, parts_num=16):
    super().__init__()
    hidden = in_channels // squeeze
    conv3x1 = nn.Sequential(BasicConv1d(in_channels, hidden, 3, padding=1),
                            nn.LeakyReLU(inplace=True),
                            BasicConv1d(hidden, in_channels, 1))
    conv3x3 = nn.Sequential(BasicConv1d(in_channels, hidden, 3, padding=1),
                            nn.LeakyReLU(inplace=True),
                            BasicConv1d(hidden, in_channels, 3, padding=1))
    self.conv1d3x1 = nn.ModuleList(
        [copy.deepcopy(conv3x1) for _ in range(parts_num)])
    self.conv1d3x3 = nn.ModuleList(
        [copy.deepcopy(conv3x3) for _ in range(parts_num)])
    self.avg3, self.max3 = nn.AvgPool1d(3, 1, 1), nn.MaxPool1d(3, 1, 1)
    self.avg5, self.max5 = nn.AvgPool1d(5, 1, 2), nn.MaxPool1d(5, 1, 2)

  def forward(self, x):  # [n, c, s, p]
    n, c, s, p = x.shape
    x = x.permute(3, 0, 1, 2).contiguous()  # [p, n, c, s]
    flat = x.view(p * n, c, s)
    s31 = torch.sigmoid(torch.stack(
        [conv(x[i]) for i, conv in enumerate(self.conv1d3x1)]))
    f31 = (self.avg3(flat) + self.max3(flat)).view(p, n, c, s) * s31
    s33 = torch.sigmoid(torch.stack(
        [conv(x[i]) for i, conv in enumerate(self.conv1d3x3)]))
    f33 = (self.avg5(flat) + self.max5(flat)).view(p, n, c, s) * s33
    ret = torch.max(f31 + f33, dim=-1)[0]  # [p, n, c]
    return ret.permute(1, 2, 0).contiguous()


class GaitPart(_Mirror):

  def __init__(self, layers_cfg=('BC-32', 'BC-32', 'M', 'FC-64-2', 'FC-64-2',
                                 'M', 'FC-128-3', 'FC-128-3'),
               hidden_dim=128, parts=16):
    super().__init__()
    channels = int(layers_cfg[-1].split('-')[1])
    self.Backbone = SetBlockWrapper(Plain(layers_cfg))
    self.Head = SeparateFCs(parts, channels, hidden_dim)
    self.HPP = SetBlockWrapper(HorizontalPoolingPyramid([parts]))
    self.TFA = PackSequenceWrapper(
        TemporalFeatureAggregator(channels, 4, parts))
    init_parameters(self)

  def compute(self, sils, seqL):  # pylint: disable=invalid-name
    out = self.HPP(self.Backbone(sils))  # [n, c, s, p]
    out = self.TFA(out, seqL)  # [n, c, p]
    return self.Head(out), None


# -------------------------------- GaitGL ------------------------------------


class GLConv(nn.Module):

  def __init__(self, cin, cout, halving, fm_sign=False):
    super().__init__()
    self.halving, self.fm_sign = halving, fm_sign
    self.global_conv3d = BasicConv3d(cin, cout)
    self.local_conv3d = BasicConv3d(cin, cout)

  def forward(self, x):  # [n, c, s, h, w]
    gob = self.global_conv3d(x)
    if self.halving == 0:
      lcl = self.local_conv3d(x)
    else:
      rows = int(x.size(3) // 2**self.halving)
      lcl = torch.cat([self.local_conv3d(z) for z in x.split(rows, 3)], 3)
    if self.fm_sign:
      return F.leaky_relu(torch.cat([gob, lcl], dim=3))
    return F.leaky_relu(gob) + F.leaky_relu(lcl)


class GeMHPP(nn.Module):

  def __init__(self, bins=(64,), p=6.5, eps=1e-6):
    super().__init__()
    self.bins, self.eps = bins, eps
    self.p = nn.Parameter(torch.ones(1) * p)

  def forward(self, x):  # [n, c, h, w]
    n, c = x.shape[:2]
    feats = []
    for b in self.bins:
      z = x.reshape(n, c, b, -1).clamp(min=self.eps).pow(self.p)
      z = F.avg_pool2d(z, (1, z.size(-1))).pow(1.0 / self.p)
      feats.append(z.squeeze(-1))
    return torch.cat(feats, -1)


class GaitGL(_Mirror):

  def __init__(self, channels=(32, 64, 128), num_classes=74,
               oumvlp=False):
    super().__init__()
    c = channels
    if oumvlp:
      self.conv3d = nn.Sequential(
          BasicConv3d(1, c[0]), nn.LeakyReLU(inplace=True),
          BasicConv3d(c[0], c[0]), nn.LeakyReLU(inplace=True))
    else:
      self.conv3d = nn.Sequential(BasicConv3d(1, c[0]),
                                  nn.LeakyReLU(inplace=True))
    self.LTA = nn.Sequential(
        BasicConv3d(c[0], c[0], (3, 1, 1), (3, 1, 1), (0, 0, 0)),
        nn.LeakyReLU(inplace=True))
    if oumvlp:
      self.GLConvA0 = nn.Sequential(GLConv(c[0], c[1], 1),
                                    GLConv(c[1], c[1], 1))
      self.GLConvA1 = nn.Sequential(GLConv(c[1], c[2], 1),
                                    GLConv(c[2], c[2], 1))
      self.GLConvB2 = nn.Sequential(GLConv(c[2], c[3], 1),
                                    GLConv(c[3], c[3], 1, fm_sign=True))
    else:
      self.GLConvA0 = GLConv(c[0], c[1], 3)
      self.GLConvA1 = GLConv(c[1], c[2], 3)
      self.GLConvB2 = GLConv(c[2], c[2], 3, fm_sign=True)
    self.MaxPool0 = nn.MaxPool3d((1, 2, 2), (1, 2, 2))
    self.TP = PackSequenceWrapper(temporal_max)
    self.HPP = GeMHPP()
    self.Head0 = SeparateFCs(64, c[-1], c[-1])
    self.Bn = nn.BatchNorm1d(c[-1])
    self.Head1 = SeparateFCs(64, c[-1], num_classes)
    init_parameters(self)

  def compute(self, sils, seqL):  # pylint: disable=invalid-name
    del seqL  # OpenGait's GaitGL pools each batch as one sequence.
    s = sils.size(2)
    if s < 3:
      sils = sils.repeat(1, 1, 3 if s == 1 else 2, 1, 1)
    outs = self.LTA(self.conv3d(sils))
    outs = self.MaxPool0(self.GLConvA0(outs))
    outs = self.GLConvB2(self.GLConvA1(outs))
    outs = self.TP(outs, None)[0]  # [n, c, h, w]
    gait = self.Head0(self.HPP(outs))  # [n, c, p]
    bnft = self.Bn(gait)
    return bnft, self.Head1(bnft)


# ---------------------------- Baseline / GaitBase ---------------------------


class _BaselineHead(_Mirror):
  """TP + HPP + FCs + BNNecks after a frame-wise backbone."""

  def compute(self, sils, seqL):  # pylint: disable=invalid-name
    outs = self.Backbone(sils)  # [n, c, s, h, w]
    outs = self.TP(outs, seqL)[0]  # [n, c, h, w]
    embed_1 = self.FCs(hpp(outs, self.bins))
    _, logits = self.BNNecks(embed_1)
    return embed_1, logits


class Baseline(_BaselineHead):

  def __init__(self, layers_cfg=('BC-64', 'BC-64', 'M', 'BC-128', 'BC-128',
                                 'M', 'BC-256', 'BC-256'),
               hidden_dim=256, num_classes=74, bins=(16, 8, 4, 2, 1)):
    super().__init__()
    channels = int(layers_cfg[-1].split('-')[1])
    self.bins = bins
    self.Backbone = SetBlockWrapper(Plain(layers_cfg))
    self.FCs = SeparateFCs(sum(bins), channels, hidden_dim)
    self.BNNecks = SeparateBNNecks(sum(bins), hidden_dim, num_classes)
    self.TP = PackSequenceWrapper(temporal_max)
    init_parameters(self)


def _conv3x3(cin, cout, stride=1):
  return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
  """torchvision's BasicBlock (same names)."""

  def __init__(self, cin, cout, stride=1, downsample=None):
    super().__init__()
    self.conv1 = _conv3x3(cin, cout, stride)
    self.bn1 = nn.BatchNorm2d(cout)
    self.relu = nn.ReLU(inplace=True)
    self.conv2 = _conv3x3(cout, cout)
    self.bn2 = nn.BatchNorm2d(cout)
    self.downsample = downsample

  def forward(self, x):
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    identity = x if self.downsample is None else self.downsample(x)
    return self.relu(out + identity)


class ResNet9(nn.Module):

  def __init__(self, channels=(64, 128, 256, 512), layers=(1, 1, 1, 1),
               strides=(1, 2, 2, 1)):
    super().__init__()
    self.conv1 = BasicConv2d(1, channels[0], 3, 1, 1)
    self.bn1 = nn.BatchNorm2d(channels[0])
    self.relu = nn.ReLU(inplace=True)
    cin = channels[0]
    for i, (cout, blocks, stride) in enumerate(zip(channels, layers,
                                                   strides)):
      mods = []
      for j in range(blocks):
        s = stride if j == 0 else 1
        down = None
        if s != 1 or cin != cout:
          down = nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False),
                               nn.BatchNorm2d(cout))
        mods.append(BasicBlock(cin, cout, s, down))
        cin = cout
      setattr(self, f'layer{i + 1}', nn.Sequential(*mods))

  def forward(self, x):
    x = self.relu(self.bn1(self.conv1(x)))
    return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class GaitBase(_BaselineHead):

  def __init__(self, channels=(64, 128, 256, 512), hidden_dim=256,
               num_classes=74, bins=(16,)):
    super().__init__()
    self.bins = bins
    self.Backbone = SetBlockWrapper(ResNet9(channels))
    self.FCs = SeparateFCs(sum(bins), channels[-1], hidden_dim)
    self.BNNecks = SeparateBNNecks(sum(bins), hidden_dim, num_classes)
    self.TP = PackSequenceWrapper(temporal_max)
    init_parameters(self)


TINY = {
    'gaitset': lambda: GaitSet((1, 4, 8, 16), 16),
    'gaitpart': lambda: GaitPart(('BC-4', 'BC-4', 'M', 'FC-8-2', 'FC-8-2',
                                  'M', 'FC-16-3', 'FC-16-3'), 16),
    'gaitgl': lambda: GaitGL((4, 8, 8), num_classes=8),
    'baseline': lambda: Baseline(('BC-4', 'BC-4', 'M', 'BC-8', 'BC-8', 'M',
                                  'BC-16', 'BC-16'), 16, num_classes=8),
    'gaitbase': lambda: GaitBase((4, 8, 8, 16), 16, num_classes=8),
}


def build(name, variant='casia_b', **kwargs):
  """Mirror of `gait_jax.models.get_model(name, variant)`."""
  if variant == 'tiny':
    return TINY[name]()
  oum = variant == 'oumvlp'
  if name == 'gaitset':
    return GaitSet((1, 64, 128, 256) if oum else (1, 32, 64, 128), **kwargs)
  if name == 'gaitpart':
    if oum:
      return GaitPart(('BC-32', 'BC-32', 'M', 'BC-64', 'BC-64', 'M',
                       'FC-128-3', 'FC-128-3', 'FC-256-3', 'FC-256-3'), 256,
                      **kwargs)
    return GaitPart(**kwargs)
  if name == 'gaitgl':
    if oum:
      kwargs.setdefault('num_classes', 5153)
      return GaitGL((32, 64, 128, 256), oumvlp=True, **kwargs)
    return GaitGL(**kwargs)
  if name == 'baseline':
    if oum:
      kwargs.setdefault('num_classes', 5153)
      return Baseline(('BC-32', 'BC-32', 'M', 'BC-64', 'BC-64', 'M',
                       'BC-128', 'BC-128', 'BC-256', 'BC-256'), **kwargs)
    return Baseline(**kwargs)
  if name == 'gaitbase':
    if oum:
      kwargs.setdefault('num_classes', 5153)
    return GaitBase(**kwargs)
  raise ValueError(name)
