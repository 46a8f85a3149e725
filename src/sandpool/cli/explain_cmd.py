"""``sandpool explain``: walk the seed's decision tree and print the pool configuration it leads to.

The whole output is one YAML document: the walk and the comparison-matrix rows are YAML comments,
so ``sandpool explain --gpu --isolation > pool.yaml`` gives a file that ``config validate`` accepts.
A question whose flag is omitted is shown with both branches, and every pool it can lead to is
printed (no flags at all: the seed's four pools, one per matrix row).
"""

from __future__ import annotations

import click

from sandpool.config.decision import (
    MATRIX_HEADER,
    QUESTIONS,
    Outcome,
    Question,
    pools_yaml,
    walk,
)

__all__ = ["explain", "render"]


def _question_lines(number: int, question: Question, answer: bool | None) -> list[str]:
    """The question, the answer given by its flag, and the branch (or both) it keeps."""
    if answer is None:
        given = f"not answered, both branches kept (--{question.flag} / --no-{question.flag})"
    else:
        given = f"{'Yes' if answer else 'No'} (--{'' if answer else 'no-'}{question.flag})"
    lines = [f"{number}. {question.text}  {given}"]
    if answer in (True, None):
        lines.append(f"     Yes -> {question.if_yes}")
    if answer in (False, None):
        lines.append(f"     No  -> {question.if_no}")
    return lines


def _table(outcomes: list[Outcome]) -> list[str]:
    rows = [MATRIX_HEADER, *(o.row.cells() for o in outcomes)]
    return ["| " + " | ".join(row) + " |" for row in rows]


def render(gpu: bool | None, isolation: bool | None) -> str:
    """The full explanation: the walk and matrix rows as comments, then the pool YAML."""
    outcomes = walk(gpu, isolation)
    notes = ["Decision tree (runtime-configuration-explained.md):"]
    for number, (question, answer) in enumerate(zip(QUESTIONS, (gpu, isolation), strict=True)):
        notes.extend(_question_lines(number + 1, question, answer))
    notes += ["", "Comparison matrix:", *_table(outcomes), ""]
    count = "1 pool" if len(outcomes) == 1 else f"{len(outcomes)} pools, one per branch"
    notes.append(f"Configuration ({count}); check it with `sandpool config validate -c FILE`:")
    comments = "".join(f"# {line}".rstrip() + "\n" for line in notes)
    return comments + pools_yaml(outcomes)


@click.command()
@click.option("--gpu/--no-gpu", default=None, help="Does the pool need GPU access?")
@click.option("--isolation/--no-isolation", default=None, help="Do user containers need isolation?")
def explain(gpu: bool | None, isolation: bool | None) -> None:
    """Walk the seed's decision tree and print the pool configuration it leads to.

    An omitted flag keeps both branches of its question. The output is valid YAML (the
    explanation is in comments): redirect it to a file and use it with -c.
    """
    click.echo(render(gpu, isolation), nl=False)
