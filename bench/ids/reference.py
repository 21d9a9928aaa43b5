#!/usr/bin/env python3
"""The batch reference of the planted-ids bench: the engine's model architecture trained in PyTorch on
the same labels, in batch (shuffled epochs, early stopping on the last tenth of the training labels),
then scored on the held-out labels. Reads users.csv (each user's aggregates as the engine held them)
and labels.csv (user, item, label, split) from DIRECTORY; prints one JSON line.

usage: reference.py DIRECTORY KIND(DotProduct|EmbeddingMlp) [--dimension 8] [--hidden 32] [--epochs 8]
"""
import argparse
import csv
import json
import math

import torch


def signed_log1p(x):
    return torch.sign(x) * torch.log1p(torch.abs(x))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("kind", choices=["DotProduct", "EmbeddingMlp"])
    parser.add_argument("--dimension", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    with open(f"{args.directory}/users.csv") as f:
        rows = list(csv.reader(f))
    features = torch.tensor([[float(v) for v in row[1:]] for row in rows[1:]], dtype=torch.float32)
    features = signed_log1p(features)
    with open(f"{args.directory}/labels.csv") as f:
        labels = list(csv.DictReader(f))
    items = max(int(r["item"]) for r in labels) + 1

    def tensors(split):
        chosen = [r for r in labels if r["split"] == split]
        return (torch.tensor([int(r["user"]) for r in chosen]), torch.tensor([int(r["item"]) for r in chosen]),
                torch.tensor([float(r["label"]) for r in chosen]))

    train_users, train_items, train_labels = tensors("train")
    held_users, held_items, held_labels = tensors("held_out")
    cut = int(0.9 * len(train_labels))
    x_train = features[train_users[:cut]]
    mean, scale = x_train.mean(0), x_train.std(0).clamp_min(1e-6)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.users = torch.nn.Embedding(features.shape[0], args.dimension)
            self.items = torch.nn.Embedding(items, args.dimension)
            torch.nn.init.uniform_(self.users.weight, -0.1, 0.1)
            torch.nn.init.uniform_(self.items.weight, -0.1, 0.1)
            width = features.shape[1]
            if args.kind == "DotProduct":
                self.linear = torch.nn.Linear(width, 1)
            else:
                self.mlp = torch.nn.Sequential(torch.nn.Linear(width + 2 * args.dimension, args.hidden), torch.nn.ReLU(), torch.nn.Linear(args.hidden, 1))

        def forward(self, users, items):
            x = (features[users] - mean) / scale
            u, i = self.users(users), self.items(items)
            if args.kind == "DotProduct":
                return (u * i).sum(1) + self.linear(x).squeeze(-1)
            return self.mlp(torch.cat([x, u, i], 1)).squeeze(-1)

    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_of = torch.nn.BCEWithLogitsLoss()

    def evaluate(users, items, y):
        with torch.no_grad():
            p = torch.sigmoid(model(users, items)).clamp(1e-7, 1 - 1e-7)
            return float(-(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean())

    best, best_state, best_epoch = math.inf, None, 0
    for epoch in range(args.epochs):
        order = torch.randperm(cut)
        for start in range(0, cut, args.batch):
            chosen = order[start:start + args.batch]
            optimizer.zero_grad()
            loss = loss_of(model(train_users[chosen], train_items[chosen]), train_labels[chosen])
            loss.backward()
            optimizer.step()
        validation = evaluate(train_users[cut:], train_items[cut:], train_labels[cut:])
        if validation < best:
            best, best_epoch = validation, epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    print(json.dumps({"kind": args.kind, "held_out": evaluate(held_users, held_items, held_labels), "validation": best,
                      "epochs": best_epoch, "train_labels": cut, "held_out_labels": len(held_labels)}))


if __name__ == "__main__":
    main()
