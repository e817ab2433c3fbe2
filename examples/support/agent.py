"""A shop's support line: order look-ups as tools, and a hand-over to a human queue.

Run it:  agent-runtime serve --agent examples/support/agent.py:build_agent
Try it:  python examples/support/run_demo.py   (no API key, no network)

`handoff_queues` gives the model the built-in `transfer_to_human` tool, limited to these
queues; an accepted handoff is stored in the queue store and shown by the queue API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.definition import Agent
from agent_runtime.agent.tools import Tool, ToolPolicy, ToolRegistry

PROMPTS = Path(__file__).resolve().parent / "prompts"
QUEUES = ("support", "billing")  # the first is the default


@dataclass(frozen=True, slots=True)
class Order:
    number: str
    phone: str  # the number that placed it: a caller only hears about their own orders
    item: str
    status: str


# A stand-in for the shop's order system (read-only).
ORDERS = MappingProxyType({o.number: o for o in (
    Order("A-17", "+15551230001", "wireless headphones", "delivered on Tuesday"),
    Order("A-23", "+15551230001", "a phone case", "shipped, arriving Friday"),
    Order("B-05", "+15557770000", "a laptop stand", "being packed"),
)})


def _normalise(number: str) -> str:
    # Speech-to-text writes "a 17", "A17", "a-17": keep letters and digits only.
    compact = "".join(ch for ch in number.upper() if ch.isalnum())
    return f"{compact[0]}-{compact[1:]}" if len(compact) > 1 and compact[0].isalpha() else compact


def lookup_order(order_number: str, ctx: CallContext) -> str:
    """The status of one of the caller's orders.

    Args:
        order_number: the order number, e.g. "A-17"
    """
    order = ORDERS.get(_normalise(order_number))
    if order is None or order.phone != ctx.caller:
        return f"no order {order_number!r} for this phone number; ask the caller to check the number"
    return f"order {order.number}: {order.item}, {order.status}"


def list_my_orders(ctx: CallContext) -> str:
    """The orders placed from the caller's phone number, newest first."""
    mine = [o for o in reversed(ORDERS.values()) if o.phone == ctx.caller]
    if not mine:
        return "no orders for this phone number"
    return "; ".join(f"{o.number}: {o.item}, {o.status}" for o in mine)


def build_agent() -> Agent:
    tools = ToolRegistry([
        Tool(lookup_order, policy=ToolPolicy(timeout_s=3)),
        Tool(list_my_orders, policy=ToolPolicy(timeout_s=3)),
    ])
    return Agent.from_prompts(
        name="support", prompts_dir=PROMPTS, tools=tools, handoff_queues=QUEUES,
        variables={"business_name": "Acme Shop"},
        handoff_line="I'll put you through to a colleague now. They'll have a note of what we discussed.",
    )
