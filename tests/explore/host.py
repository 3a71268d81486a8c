"""The explorer's model of what the Functions host does around the app: its queues and clock.

The host delivers a queue message at least once. Each receive counts one dequeue; a message
received past `maxDequeueCount` goes to `<queue>-poison` unread, and so does one whose
function failed on the last allowed delivery. The poison queue has no poison queue of its
own: a message there that fails past the limit stays, never delivered again (PLATFORM-FACTS,
"The real host ... read from their source"). The table underneath is the real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

MAIN = "job-requests"
POISON = "job-requests-poison"
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Message:
    """One message on a host queue."""

    id: str
    body: str
    job_id: str
    queue: str = MAIN
    dequeue_count: int = 0
    #: visible | done (deleted) | poisoned (moved to the poison queue) | stuck (poison past
    #: its limit) | lost (expired, cleared)
    state: str = "visible"


@dataclass
class Queues:
    """The job queue and its poison queue, as the host keeps them."""

    max_dequeue_count: int
    messages: dict[str, Message] = field(default_factory=dict)
    minted: int = 0

    def send(self, body: str, job_id: str, queue: str = MAIN) -> Message:
        self.minted += 1
        message = Message(f"m{self.minted}", body, job_id, queue)
        self.messages[message.id] = message
        return message

    def visible(self) -> list[str]:
        return [m.id for m in self.messages.values() if m.state == "visible"]

    def of_job(self, job_id: str) -> list[Message]:
        return [m for m in self.messages.values()
                if m.job_id == job_id and m.state == "visible" and m.queue == MAIN]

    def receive(self, message: Message) -> bool:
        """Count a dequeue; False if the host moves it aside unread instead of delivering it."""
        message.dequeue_count += 1
        if message.dequeue_count <= self.max_dequeue_count:
            return True
        if message.queue == MAIN:
            self.poison(message)
        else:
            message.state = "stuck"
        return False

    def failed(self, message: Message) -> None:
        """The function raised: the message comes back, or goes to poison after the last try."""
        if message.state != "visible":
            return  # a later delivery of it already finished it
        if message.queue == MAIN and message.dequeue_count >= self.max_dequeue_count:
            self.poison(message)

    def poison(self, message: Message) -> None:
        message.state = "poisoned"
        self.send(message.body, message.job_id, POISON)


@dataclass
class Clock:
    """The time every app function sees; only the explorer moves it."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def jump(self, by: timedelta) -> None:
        self.now += by
