"""Meta-validation of a run: paired held-out episodes shaped like the use, and what the run
records (curve, step 0, best step, meta-value; its base and meta-training) in its folder
and card."""

from __future__ import annotations

import torch

from ..data.episodes import EpisodeSampler, parse_n_way

EVAL_SEED_OFFSET = 10_000  # validation episodes never share the training stream's seed


@torch.no_grad()
def validation_stats(fewshot, accelerator, args, sources, k_shot: int, episodes: int):
    """(accuracy, loss) over this process's share of the validation episodes, reduced over
    processes; the same episodes at every evaluation of a run."""
    n_way = parse_n_way(args.eval_n_way) if args.eval_n_way else args.parsed_n_way()
    sampler = EpisodeSampler(
        sources,
        n_way,
        k_shot,
        args.q_query,
        temperature=args.temperature,
        seed=args.seed + EVAL_SEED_OFFSET,
    ).for_process(accelerator.process_index, accelerator.num_processes)
    accs, losses = [], []
    for _ in range(episodes):
        episode = sampler.sample()
        with accelerator.autocast():
            logits = fewshot.episode_logits(
                episode.support_texts,
                episode.support_labels,
                episode.n_way,
                episode.query_texts,
                support_pairs=episode.support_text_pairs,
                query_pairs=episode.query_text_pairs,
                label_names=episode.label_names,
                source=episode.source,
            )
        labels = torch.tensor(episode.query_labels, device=logits.device)
        losses.append(torch.nn.functional.cross_entropy(logits.float(), labels).item())
        accs.append((logits.argmax(-1) == labels).float().mean().item())
    stats = torch.tensor([sum(accs), sum(losses), len(accs)], device=accelerator.device)
    stats = accelerator.reduce(stats, reduction="sum")
    return (stats[0] / stats[2]).item(), (stats[1] / stats[2]).item()


def validation_record(args, eval_sources, log_history) -> dict | None:
    """The validation curve and the meta-value on it: accuracy after meta-training minus
    that of step 0, the encoder before it (the same adaptation, the same episodes)."""
    curve = [
        {k: v for k, v in h.items() if k == "step" or k.startswith("eval_accuracy")}
        for h in log_history
        if "eval_accuracy" in h
    ]
    if not curve:
        return None
    start = next((h["eval_accuracy"] for h in curve if h["step"] == 0), None)
    best = max(curve, key=lambda h: h["eval_accuracy"])
    return {
        "sources": [s.name for s in eval_sources],
        "n_way": args.eval_n_way or args.n_way,
        "k_shots": args.eval_k_shot or [args.k_shot],
        "episodes": args.eval_episodes,
        "curve": curve,
        "step_0": start,
        "best": best["eval_accuracy"],
        "best_step": best["step"],
        "meta_value": None if start is None else best["eval_accuracy"] - start,
    }


def run_info(trainer) -> dict:
    """What a run records in ``fewshot_nlp.json``: its base, its meta-training, its
    validation record."""
    base = getattr(trainer.model, "peft_config", None)
    name = (
        base["default"].base_model_name_or_path
        if base
        else getattr(trainer.model.config, "_name_or_path", None)
    )
    return {
        "base_model": name,
        "base_encoder": trainer.base_encoder,
        "max_length": trainer.args.max_length,
        "meta_training": {
            "steps": trainer.state.global_step,
            "meta_batch_size": trainer.args.meta_batch_size,
            "n_way": trainer.args.n_way,
            "k_shot": trainer.args.k_shot,
            "q_query": trainer.args.q_query,
            "temperature": trainer.args.temperature,
            "learning_rate": trainer.args.learning_rate,
            "sources": [
                {
                    "name": s.name,
                    "examples": len(s),
                    "classes": len(s.label_index),
                    "probability": float(p),
                }
                for s, p in zip(trainer.train_sources, trainer.sampler.source_probs)
            ],
        },
        "best_eval_accuracy": trainer.state.best_metric,
        "validation": validation_record(
            trainer.args, trainer.eval_sources, trainer.state.log_history
        ),
    }
