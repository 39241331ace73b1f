"""The notice every call carries, the system prompt around it, and the research prompt templates."""
from __future__ import annotations

from dataclasses import dataclass

NOTICE = "Research support, not financial advice"

SYSTEM_PROMPT = (
    f"You are Waybill's research assistant for trading and market research. {NOTICE}: you help a user "
    "read filings, compare companies and think through ideas; you never tell them what to buy or sell, "
    "and you say so when asked. When a data card computed by Waybill is attached, use its figures as "
    "given and do not recompute them. Answer in Markdown."
)


@dataclass(frozen=True)
class PromptTemplate:
    """A starting point for a research question; the brackets are for the user to fill in."""

    slug: str
    title: str
    text: str


TEMPLATES = (
    PromptTemplate("filing", "Summarise a filing", (
        "Summarise the filing or earnings release pasted below for [company]. Cover revenue, margins, "
        "guidance, one-off items, and what changed since the last report. End with three questions an "
        "analyst should ask management.")),
    PromptTemplate("compare", "Compare companies", (
        "Compare [company A] and [company B] (or the [sector] sector against [sector]) on growth, "
        "profitability, balance sheet, valuation and the main risks. Present the comparison as a table, "
        "then the differences that matter most.")),
    PromptTemplate("thesis", "Outline a trade thesis", (
        "Outline a trade thesis for [instrument] over [horizon]: the idea, the catalysts, what is priced in, "
        "and how to know it is wrong. Then argue the strongest case against it: the risks, what would "
        "invalidate it, and the position-sizing questions to answer first.")),
    PromptTemplate("pattern", "Explain a chart pattern", (
        "Explain the [pattern, e.g. head and shoulders] chart pattern: how it forms, how traders read it, "
        "how often it fails, and what it looks like in the pasted price data, if it appears there at all.")),
)
