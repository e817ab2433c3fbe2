"""A dental practice's booking line: an appointment book in SQLite, as three plain functions.

Run it:  agent-runtime serve --agent examples/booking/agent.py:build_agent
Try it:  agent-runtime demo --agent examples/booking/agent.py:build_agent
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from pathlib import Path

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.definition import Agent
from agent_runtime.agent.tools import Tool, ToolRegistry, ToolPolicy

HOURS = ["09:00", "10:00", "11:00", "14:00", "15:00", "16:00"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


class AppointmentBook:
    """One SQLite file; each tool call opens its own connection (tools run in worker threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("""CREATE TABLE IF NOT EXISTS appointments (
                id INTEGER PRIMARY KEY, day TEXT NOT NULL, time TEXT NOT NULL, name TEXT NOT NULL,
                phone TEXT NOT NULL, UNIQUE(day, time))""")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5)

    def find_free_slots(self, day: str) -> str:
        """Free appointment times on a weekday.

        Args:
            day: weekday name, e.g. "tuesday"
        """
        day = day.strip().lower()
        if day not in DAYS:
            return f"we only book weekdays ({', '.join(DAYS)})"
        with self._db() as db:
            taken = {t for (t,) in db.execute("SELECT time FROM appointments WHERE day = ?", (day,))}
        free = [h for h in HOURS if h not in taken]
        return f"free on {day}: {', '.join(free)}" if free else f"{day} is fully booked"

    def book_appointment(self, day: str, time: str, name: str, ctx: CallContext) -> str:
        """Books a slot for the caller. Only after the caller confirmed day, time and name.

        Args:
            day: weekday name
            time: one of the free times, as HH:MM
            name: the patient's name
        """
        day = day.strip().lower()
        if day not in DAYS or time not in HOURS:
            return f"no such slot: {day} {time}; use find_free_slots"
        try:
            with self._db() as db:
                cur = db.execute("INSERT INTO appointments (day, time, name, phone) VALUES (?, ?, ?, ?)",
                                 (day, time, name.strip(), ctx.caller))
        except sqlite3.IntegrityError:
            return f"{day} at {time} was just taken; offer another time"
        return f"booked: {name} on {day} at {time}, booking number {cur.lastrowid}"

    def cancel_appointment(self, booking_number: int, ctx: CallContext) -> str:
        """Cancels one of the caller's bookings.

        Args:
            booking_number: the number given when it was booked
        """
        with self._db() as db:
            cur = db.execute("DELETE FROM appointments WHERE id = ? AND phone = ?", (booking_number, ctx.caller))
        return "cancelled" if cur.rowcount else "no booking with that number for this phone number"


def build_agent(db_path: str | None = None) -> Agent:
    # Beside the runtime's own stores (AGENT_DATA_DIR, default ./data), not in the working folder.
    default = Path(os.environ.get("AGENT_DATA_DIR", "data")) / "appointments.sqlite3"
    book = AppointmentBook(Path(db_path or os.environ.get("BOOKING_DB", str(default))))
    tools = ToolRegistry([
        Tool(book.find_free_slots, policy=ToolPolicy(timeout_s=3)),
        # confirm=True: the runtime refuses the first call and books only when the model calls
        # again with confirmed=true after the caller has answered (read back, then "yes").
        Tool(book.book_appointment, policy=ToolPolicy(timeout_s=3, confirm=True, interruptible=False)),
        Tool(book.cancel_appointment, policy=ToolPolicy(timeout_s=3, confirm=True, interruptible=False)),
    ])
    agent = Agent.from_prompts(name="booking", tools=tools)
    return replace(agent, system_prompt=agent.system_prompt + (
        "\nYou book dental appointments on weekdays. Find free slots before offering times. "
        "Before booking or cancelling, repeat the details and ask the caller to confirm."))
