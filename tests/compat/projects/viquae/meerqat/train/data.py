# Source: github.com/PaulLerner/ViQuAE, meerqat/train/data.py (commit cb9157b).
# Trimmed: datasets.load_from_disk(dataset_path / kb) and the tokenizer are replaced by a synthetic
# stand-in: questions and M passages as random token ids, the relevant passage first in the knowledge
# base then shuffled by collate_fn; kept: the DataMoule init arguments of the config, train_dataset /
# eval_dataset / test_dataset attributes, loader_kwargs, train/eval batch sizes and the module's own
# collate_fn that builds each batch.
from typing import Optional

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader


class DataModule(pl.LightningDataModule):
    def __init__(self, tokenizer_class: str, tokenizer_name_or_path: str, dataset_path: Optional[str] = None,
                 train_batch_size: int = 8, eval_batch_size: int = 8, M: int = 24,
                 loader_kwargs: Optional[dict] = None, tokenization_kwargs: Optional[dict] = None):
        super().__init__()
        self.tokenizer_class = tokenizer_class
        self.dataset_path = dataset_path
        self.train_batch_size = train_batch_size
        self.eval_batch_size = eval_batch_size
        self.M = M
        self.loader_kwargs = loader_kwargs or {}
        self.tokenization_kwargs = tokenization_kwargs or {}

    def _items(self, n, seed):
        # synthetic stand-in for load_from_disk(dataset_path): token ids of a question and its passages
        g = torch.Generator().manual_seed(seed)
        return [{"question": torch.randint(1, 50, (6,), generator=g),
                 "passages": torch.randint(1, 50, (self.M, 8), generator=g)} for _ in range(n)]

    def setup(self, stage=None):
        self.train_dataset = self._items(96, 0)
        self.eval_dataset = self._items(32, 1)
        self.test_dataset = self._items(32, 2)

    def collate_fn(self, items):
        questions, passages, labels = [], [], []
        for item in items:
            relevant = int(item["question"][0]) % self.M
            p = item["passages"].clone()
            p[relevant, :3] = item["question"][:3]  # the relevant passage shares the question's first words
            questions.append(item["question"])
            passages.append(p)
            labels.append(relevant)
        return {"question_ids": torch.stack(questions), "input_ids": torch.stack(passages),
                "labels": torch.tensor(labels)}

    def train_dataloader(self):
        return DataLoader(self.train_dataset, batch_size=self.train_batch_size, collate_fn=self.collate_fn,
                          shuffle=True, **self.loader_kwargs)

    def val_dataloader(self):
        return DataLoader(self.eval_dataset, batch_size=self.eval_batch_size, collate_fn=self.collate_fn,
                          **self.loader_kwargs)

    def test_dataloader(self):
        return DataLoader(self.test_dataset, batch_size=self.eval_batch_size, collate_fn=self.collate_fn,
                          **self.loader_kwargs)


class ReaderDataModule(DataModule):
    def __init__(self, *args, kb: Optional[str] = None, max_n_answers: int = 10, n_relevant_passages: int = 1,
                 search_key: str = "search", run_path: Optional[str] = None, oracle: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.kb = kb
        self.max_n_answers = max_n_answers
        self.n_relevant_passages = n_relevant_passages
        self.search_key = search_key
        self.run_path = run_path
        self.oracle = oracle
