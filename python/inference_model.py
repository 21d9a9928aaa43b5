"""The engine's scoring model in PyTorch: train here, import into the engine; export from the engine, study here.

The parameter names are the engine's (`inference model import` reads them; `inference model export`
writes them):

    layers.linear.weight [1, inputs], layers.linear.bias [1]             Logistic
    layers.hidden.weight [hidden, inputs], layers.hidden.bias [hidden],
    layers.output.weight [1, hidden], layers.output.bias [1]             Mlp
    input_mean [inputs], input_scale [inputs]                            both (optional on import)

Inputs are the entity features in the order they are declared, then the request features. The
model standardises them itself, (x - input_mean) * input_scale, and returns one logit per row; the
engine's score is its sigmoid. A plain nn.Sequential(nn.Linear(n, 1)) or
nn.Sequential(nn.Linear(n, h), nn.ReLU(), nn.Linear(h, 1)) state_dict is read too (no standardisation).

    model = ScoringModel(inputs=5, hidden=8)      # hidden=None: logistic regression
    ...train...
    torch.save(model.state_dict(), "model.pt")    # then: inference model import model.pt

    model = load("exported.pt")                   # what `inference model export` wrote
    probabilities = model.score(x)
"""
from collections import OrderedDict

import torch
from torch import nn


class ScoringModel(nn.Module):
    def __init__(self, inputs: int, hidden: int | None = None):
        super().__init__()
        if hidden is None:
            self.layers = nn.Sequential(OrderedDict(linear=nn.Linear(inputs, 1)))
        else:
            self.layers = nn.Sequential(OrderedDict(
                hidden=nn.Linear(inputs, hidden), relu=nn.ReLU(), output=nn.Linear(hidden, 1)))
        self.input_mean = nn.Parameter(torch.zeros(inputs), requires_grad=False)
        self.input_scale = nn.Parameter(torch.ones(inputs), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.input_mean) * self.input_scale).squeeze(-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities, as the engine's Score returns them."""
        with torch.no_grad():
            return torch.sigmoid(self.forward(x))


def load(path: str) -> ScoringModel:
    """A model file in the engine's names (an export of the engine, or a state_dict of ScoringModel):
    torch.save's format, or safetensors when the name ends in .safetensors."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu")
    if "layers.linear.weight" in state:
        model = ScoringModel(state["layers.linear.weight"].shape[1])
    else:
        weight = state["layers.hidden.weight"]
        model = ScoringModel(weight.shape[1], weight.shape[0])
    model.load_state_dict(state)
    return model.eval()
