"""The model zoo: CIFAR ResNets and Wide ResNets with named stage features, built by name."""

from kdforaa.models.cifar_resnet import CifarResNet, FeatureClassifier
from kdforaa.models.registry import TimmClassifier, available_models, build_model, describe_model
from kdforaa.models.wrn import WideResNet

__all__ = [
    "CifarResNet",
    "FeatureClassifier",
    "TimmClassifier",
    "WideResNet",
    "available_models",
    "build_model",
    "describe_model",
]
