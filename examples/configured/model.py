"""The model of the configured example; a local module, so sacred records its source with the run."""

from torch import nn


class MLP(nn.Module):
    """A plain multi-layer perceptron for two-class classification."""

    def __init__(self, in_features: int, num_layers: int, width: int, use_dropout: bool, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = in_features
        for _ in range(num_layers):
            layers += [nn.Linear(size, width), nn.ReLU()]
            if use_dropout:
                layers.append(nn.Dropout(dropout))
            size = width
        layers.append(nn.Linear(size, 2))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)
