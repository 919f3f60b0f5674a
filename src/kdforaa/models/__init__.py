"""The model zoo: RepDistiller's CIFAR models (ResNets, Wide ResNets, VGGs, MobileNetV2, ShuffleNets,
ResNet50) with named stage features, built by name."""

from kdforaa.models.bottleneck_resnet import ResNet50
from kdforaa.models.cifar_resnet import CifarResNet, FeatureClassifier
from kdforaa.models.mobilenetv2 import MobileNetV2
from kdforaa.models.registry import TimmClassifier, available_models, build_model, describe_model
from kdforaa.models.shufflenet import ShuffleNetV1, ShuffleNetV2
from kdforaa.models.vgg import VGG
from kdforaa.models.wrn import WideResNet

__all__ = [
    "VGG",
    "CifarResNet",
    "FeatureClassifier",
    "MobileNetV2",
    "ResNet50",
    "ShuffleNetV1",
    "ShuffleNetV2",
    "TimmClassifier",
    "WideResNet",
    "available_models",
    "build_model",
    "describe_model",
]
