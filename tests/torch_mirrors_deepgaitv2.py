"""PyTorch mirror of OpenGait's DeepGaitV2 (all three modes).

Written from OpenGait's deepgaitv2.py (network 1.1, state-dict keys 1.2,
init 1.4): OpenGait's module tree and names (SetBlockWrapper's
`forward_block`, `shortcut3d`, `sbn`, `downsample`, FCs, BNNecks), its
`make_layer` (downsample only on a stage's first block, when it strides or
changes channels; an identity lambda otherwise), its init
(`torch_mirrors.init_parameters`) and its forward interface
(`(ipts, labs, typs, vies, seqL)`, width asserted 44 or 88). Layout
`[n, c, s, h, w]`.
"""

import torch
from torch import nn

import torch_mirrors
from torch_mirrors import PackSequenceWrapper
from torch_mirrors import SeparateBNNecks
from torch_mirrors import SeparateFCs
from torch_mirrors import SetBlockWrapper


def conv3x3(cin, cout, stride=1):
  return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def conv1x1(cin, cout, stride=1):
  return nn.Conv2d(cin, cout, 1, stride, bias=False)


class BasicBlock2D(nn.Module):
  """torchvision-style basic block (conv1, bn1, conv2, bn2, downsample)."""
  expansion = 1

  def __init__(self, cin, cout, stride=1, downsample=None):
    super().__init__()
    self.conv1 = conv3x3(cin, cout, stride)
    self.bn1 = nn.BatchNorm2d(cout)
    self.relu = nn.ReLU(inplace=True)
    self.conv2 = conv3x3(cout, cout)
    self.bn2 = nn.BatchNorm2d(cout)
    self.downsample = downsample

  def forward(self, x):
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    identity = x if self.downsample is None else self.downsample(x)
    return self.relu(out + identity)


class BasicBlockP3D(nn.Module):
  """Per-frame conv1, residual (3, 1, 1) temporal conv, per-frame conv2."""
  expansion = 1

  def __init__(self, cin, cout, stride=1, downsample=None):
    super().__init__()
    self.relu = nn.ReLU(inplace=True)
    self.conv1 = SetBlockWrapper(nn.Sequential(
        conv3x3(cin, cout, stride), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True)))
    self.conv2 = SetBlockWrapper(nn.Sequential(
        conv3x3(cout, cout), nn.BatchNorm2d(cout)))
    self.shortcut3d = nn.Conv3d(cout, cout, (3, 1, 1), (1, 1, 1), (1, 0, 0),
                                bias=False)
    self.sbn = nn.BatchNorm3d(cout)
    self.downsample = downsample

  def forward(self, x):  # [n, c, s, h, w]
    out = self.conv1(x)
    out = self.relu(out + self.sbn(self.shortcut3d(out)))
    out = self.conv2(out)
    identity = x if self.downsample is None else self.downsample(x)
    return self.relu(out + identity)


class BasicBlock3D(nn.Module):
  """Two 3x3x3 Conv3d + BatchNorm3d pairs."""
  expansion = 1

  def __init__(self, cin, cout, stride=(1, 1, 1), downsample=None):
    super().__init__()
    tp = 1 if stride[0] in (1, 2) else 0
    self.conv1 = nn.Conv3d(cin, cout, (3, 3, 3), stride, (tp, 1, 1),
                           bias=False)
    self.bn1 = nn.BatchNorm3d(cout)
    self.relu = nn.ReLU(inplace=True)
    self.conv2 = nn.Conv3d(cout, cout, (3, 3, 3), (1, 1, 1), (1, 1, 1),
                           bias=False)
    self.bn2 = nn.BatchNorm3d(cout)
    self.downsample = downsample

  def forward(self, x):
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    identity = x if self.downsample is None else self.downsample(x)
    return self.relu(out + identity)


BLOCKS = {'2d': BasicBlock2D, 'p3d': BasicBlockP3D, '3d': BasicBlock3D}


class DeepGaitV2(nn.Module):
  """OpenGait's DeepGaitV2 (`build_network` + `init_parameters`)."""

  def __init__(self, mode='p3d', layers=(1, 1, 1, 1),
               channels=(64, 128, 256, 512), class_num=74, use_emb2=False,
               in_channels=1):
    super().__init__()
    block = BLOCKS[mode]
    self.use_emb2 = use_emb2
    if mode == '3d':
      strides = [[1, 1], [1, 2, 2], [1, 2, 2], [1, 1, 1]]
    else:
      strides = [[1, 1], [2, 2], [2, 2], [1, 1]]
    self.inplanes = channels[0]
    self.layer0 = SetBlockWrapper(nn.Sequential(
        conv3x3(in_channels, self.inplanes, 1),
        nn.BatchNorm2d(self.inplanes), nn.ReLU(inplace=True)))
    self.layer1 = SetBlockWrapper(self.make_layer(
        BasicBlock2D, channels[0], strides[0], layers[0], mode))
    self.layer2 = self.make_layer(block, channels[1], strides[1], layers[1],
                                  mode)
    self.layer3 = self.make_layer(block, channels[2], strides[2], layers[2],
                                  mode)
    self.layer4 = self.make_layer(block, channels[3], strides[3], layers[3],
                                  mode)
    if mode == '2d':
      self.layer2 = SetBlockWrapper(self.layer2)
      self.layer3 = SetBlockWrapper(self.layer3)
      self.layer4 = SetBlockWrapper(self.layer4)
    self.FCs = SeparateFCs(16, channels[3], channels[2])
    self.BNNecks = SeparateBNNecks(16, channels[2], class_num)
    self.TP = PackSequenceWrapper(torch_mirrors.temporal_max)
    torch_mirrors.init_parameters(self)

  def make_layer(self, block, planes, stride, blocks_num, mode):
    if max(stride) > 1 or self.inplanes != planes * block.expansion:
      out = planes * block.expansion
      if mode == '2d':
        downsample = nn.Sequential(conv1x1(self.inplanes, out, stride),
                                   nn.BatchNorm2d(out))
      else:
        s3 = stride if mode == '3d' else [1, *stride]
        downsample = nn.Sequential(
            nn.Conv3d(self.inplanes, out, (1, 1, 1), s3, (0, 0, 0),
                      bias=False), nn.BatchNorm3d(out))
    else:
      downsample = lambda x: x  # pylint: disable=unnecessary-lambda-assignment
    mods = [block(self.inplanes, planes, stride=stride,
                  downsample=downsample)]
    self.inplanes = planes * block.expansion
    s = [1, 1] if mode in ('2d', 'p3d') else [1, 1, 1]
    for _ in range(1, blocks_num):
      mods.append(block(self.inplanes, planes, stride=s))
    return nn.Sequential(*mods)

  def forward(self, inputs):
    ipts, labs, _, _, seqL = inputs  # pylint: disable=invalid-name
    sils = ipts[0].unsqueeze(1)  # [n, 1, s, h, w]
    assert sils.size(-1) in (44, 88)
    out = self.layer4(self.layer3(self.layer2(self.layer1(
        self.layer0(sils)))))  # [n, c, s, h, w]
    outs = self.TP(out, seqL, options={'dim': 2})[0]  # [n, c, h, w]
    feat = torch_mirrors.hpp(outs, (16,))  # [n, c, p]
    embed_1 = self.FCs(feat)  # [n, c, p]
    embed_2, logits = self.BNNecks(embed_1)  # [n, c, p], [n, K, p]
    embed = embed_2 if self.use_emb2 else embed_1
    return {
        'training_feat': {
            'triplet': {'embeddings': embed_1, 'labels': labs},
            'softmax': {'logits': logits, 'labels': labs}},
        'visual_summary': {},
        'inference_feat': {'embeddings': embed}}


def randomise(module, seed):
  """Random BatchNorm statistics and affine parameters (1-D/2-D/3-D)."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        c = m.num_features
        m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
        m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
        m.weight.copy_(1.0 + 0.3 * torch.randn(c, generator=gen))
        m.bias.copy_(0.2 * torch.randn(c, generator=gen))
        m.num_batches_tracked.fill_(7)
  return module
