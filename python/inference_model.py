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

A model over ids (EmbeddingMlp, DotProduct), exported from the engine's checkpoints, adds one
embeddings.NAME.weight [rows + 1, dimension] per id input (row 0: the shared default row) and a
vocabulary beside the file (FILE.ids.json): for each id holding a row, its 64-bit key and row. Ids are
looked up by the key the engine hashes their UTF-8 text to (engine_key; needs the xxhash module,
Debian: python3-xxhash); an id without a row reads the default row, as in the engine.

    model = load_with_ids("exported.pt")
    probabilities = model.score(x, {"user": ["u-1", "u-2"], "item": ["i-9", "i-4"]})
"""
import json
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


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as its default partitioner hashes a record's key."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    tail = length - length % 4
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def engine_key(text: str) -> int:
    """The engine's 64-bit key of an id or entity: Kafka's partitioner hash in the top 31 bits, XXH3-64 in the low 33."""
    import xxhash
    data = text.encode("utf-8")
    return ((murmur2(data) & 0x7FFFFFFF) << 33) | (xxhash.xxh3_64_intdigest(data) & ((1 << 33) - 1))


class IdScoringModel(nn.Module):
    """A model over ids as the engine scores it: EmbeddingMlp (standardised inputs and the ids' embeddings
    concatenated, then linear -> ReLU -> linear) or DotProduct (the dot product of two ids' embeddings plus a
    linear term over the standardised inputs)."""

    def __init__(self, state: dict, vocabulary: dict):
        super().__init__()
        self.inputs = vocabulary["inputs"]
        width = state["input_mean"].shape[0]
        self.kind = "DotProduct" if "layers.linear.weight" in state else "EmbeddingMlp"
        if self.kind == "DotProduct":
            self.layers = nn.Sequential(OrderedDict(linear=nn.Linear(width, 1)))
        else:
            hidden = state["layers.hidden.weight"].shape[0]
            self.layers = nn.Sequential(OrderedDict(
                hidden=nn.Linear(state["layers.hidden.weight"].shape[1], hidden), relu=nn.ReLU(), output=nn.Linear(hidden, 1)))
        self.input_mean = nn.Parameter(torch.zeros(width), requires_grad=False)
        self.input_scale = nn.Parameter(torch.ones(width), requires_grad=False)
        self.embeddings = nn.ModuleDict({i["name"]: nn.Embedding(*state[f"embeddings.{i['name']}.weight"].shape) for i in self.inputs})
        self.load_state_dict(state)
        self.rows = {i["name"]: dict(zip((int(k) for k in i["keys"]), i["rows"])) for i in self.inputs}

    def lookup(self, name: str, ids: list[str]) -> torch.Tensor:
        """Each id's row of the input's table (0, the default row, for an id without one)."""
        rows = self.rows[name]
        return torch.tensor([rows.get(engine_key(i), 0) for i in ids], dtype=torch.long)

    def forward(self, x: torch.Tensor, ids: dict[str, list[str]]) -> torch.Tensor:
        standardised = (x - self.input_mean) * self.input_scale
        embedded = [self.embeddings[i["name"]](self.lookup(i["name"], ids[i["name"]])) for i in self.inputs]
        if self.kind == "EmbeddingMlp":
            return self.layers(torch.cat([standardised, *embedded], 1)).squeeze(-1)
        return self.layers(standardised).squeeze(-1) + (embedded[0] * embedded[1]).sum(1)

    def score(self, x: torch.Tensor, ids: dict[str, list[str]]) -> torch.Tensor:
        """Probabilities, as the engine's Score returns them; ids by input name (an Entity input: the rows' entities)."""
        with torch.no_grad():
            return torch.sigmoid(self.forward(x, ids))


def load_with_ids(path: str) -> IdScoringModel:
    """A model over ids that `inference model export --checkpoints DIR` wrote, with its vocabulary (FILE.ids.json)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu")
    with open(path + ".ids.json") as f:
        vocabulary = json.load(f)
    return IdScoringModel(state, vocabulary).eval()
