"""Stream a reply into platform messages: coalesced edits under shared budgets, full final text."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

from bot.adapter import Adapter, AppendsApart, ShowsFeedback
from bot.errors import PlatformRateLimited, UserFacingError
from bot.events import Posted, Request
from bot.i18n import N_, current, t
from bot.ops.scope import mark_visible
from bot.streaming.budgets import Budgets, EditBudget
from bot.streaming.pacing import HORIZON, gap
from bot.streaming.splitting import Part, closing_fence, next_part
from bot.streaming.writes import required

log = logging.getLogger(__name__)

T = TypeVar("T")

# Sentences kept as catalog ids; each is translated when it is written (t()).
EMPTY_REPLY = N_("(empty reply)")
CUT_SHORT = N_("the bot stopped before this reply was finished")
# A reply waiting for spare budget looks again this often (pledges change as replies end).
RECHECK = 1.0
# A final text that waited this long for rate limits is logged (it is still delivered).
SLOW_FINAL = 30.0
# A final text whose edit would wait longer than this goes out as a new message instead,
# when one can be posted sooner: finished answers show within about 2 s.
REPOST_AFTER = 1.5
# What a superseded message is edited to when the platform refused to delete it.
MOVED = N_("_(moved to the message below)_")
# Feedback buttons are a nicety: they wait this long at most for the edit budget.
FEEDBACK_WAIT = 15.0


class StreamingReply:
    """One reply, streamed into one or more platform messages.

    `write` only appends; a single flusher task per reply sends the latest snapshot when the
    message's edit interval and the shared budget allow, so frames in between are dropped,
    never queued. The first text is posted at once; `finish` delivers the full final text of
    every part. Past `limits.max_chars` the reply rolls over into a new message; a finished
    part never changes again, and no message ever loses text it showed.

    Budget policy. Every open reply pledges the writes it will certainly still need: its
    post until posted, and one write for its final text, in the budget that write will come
    from: the append budget of a natively streamed message (AppendsApart), else the delete
    budget where the final text can be posted anew (below: a new message in the channel and
    a delete of the old one), else the edit budget. Intermediate edits spend only tokens
    beyond the pledges on their budget, and beyond the delete pledges the delete budget
    cannot serve now (those finals fall back on edits), so each reply still gets its post and
    its final text promptly instead of the budget going to frames that will be overwritten.

    Spare tokens are shared out over time, not first come first served: a reply edits again
    only once the text it shows is old enough for its even share of what the budget can
    spare over the next `horizon` seconds among the replies streaming on it
    (bot/streaming/pacing.py), and never sooner than the platform's edit interval.

    Final texts do not queue behind a drained edit budget: when a message's final text (the
    reply's end, or a part closed by a rollover) would wait more than `repost_after` seconds
    for its edit while a new message could go out sooner (posts often have their own limit,
    such as Slack's per channel), the text is posted as a new message and the old one (a
    "Transcribing…" placeholder, a partial frame) is deleted through the platform's delete
    budget. Where the platform declares no delete budget the final text waits for its edit;
    a message the platform refuses to delete is edited to a pointer instead, so no
    placeholder outlives the work. A thread's first message is never replaced this way.
    A final text is never given up on: it waits (first come, first served) for as long as
    the limits take; at shutdown the dispatcher's drain bounds that wait.
    """

    def __init__(
        self,
        adapter: Adapter,
        req: Request,
        budgets: Budgets,
        *,
        repost_after: float = REPOST_AFTER,
        horizon: float = HORIZON,
    ) -> None:
        self.adapter = adapter
        self.req = req
        self.limits = adapter.limits
        self.posted: list[Posted] = []
        self._edits = budgets.for_place(self.limits, req.place)
        self._posts = budgets.for_posts(self.limits, req.place)
        self._deletes = budgets.for_deletes(self.limits, req.place)
        self._repost_after = repost_after
        self._horizon = horizon
        # Checked once: a Protocol isinstance is slow, and every edit asks.
        self._appends_apart = adapter if isinstance(adapter, AppendsApart) else None
        self._measure = self.limits.length
        # Show at most this much of a message before its cut is known, so that the cut
        # (at a paragraph/line/space boundary) never has to take back shown text.
        self._headroom = min(400, max(1, self.limits.max_chars // 8))
        self._chunks: list[str] = []
        self._status = ""
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()
        self._final: str | None = None
        self._task: asyncio.Task[None] | None = None
        # The message being written: its Posted, where its part starts, what it shows.
        self._current: Posted | None = None
        self._offset = 0
        self._opener = ""
        self._shown = ""
        self._shown_end = 0
        self._last_write = -math.inf
        # A post token acquired while waiting for our turn, not yet used.
        self._token: EditBudget | None = None
        self._pledged_post = False
        # The budget holding this reply's pledge for its final write (see the class doc).
        self._final_pledge: EditBudget | None = None
        # The budget whose spare tokens this reply's intermediate edits compete for.
        self._joined: EditBudget | None = None
        # Messages posted as streamed, not yet handed to adapter.finalize.
        self._open: list[Posted] = []
        # Deletes (or pointer edits) of messages whose text went out anew, under way.
        self._retiring: set[asyncio.Task[None]] = set()
        # The reply's key when its last message should carry feedback buttons, and whether
        # they went out already (with the final edit).
        self._feedback: str | None = None
        self._feedback_asked = False

    # --- what callers use ----------------------------------------------------------------

    @property
    def text(self) -> str:
        """Everything written so far."""
        if len(self._chunks) > 1:
            self._chunks[:] = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    @property
    def done(self) -> bool:
        return self._final is not None

    def write(self, delta: str) -> None:
        """Append text; never waits. Supersedes any progress status."""
        if self._final is not None:
            raise RuntimeError("write() after the reply ended")
        if not delta:
            return
        self._chunks.append(delta)
        self._status = ""
        self._poke()

    def progress(self, status: str) -> None:
        """Show a status line (elapsed time, piece k of n) under the text; "" clears it."""
        if self._final is not None or status == self._status:
            return
        self._status = status
        self._poke()

    async def finish(
        self, footer: str | None = None, *, feedback: str | None = None
    ) -> list[Posted]:
        """Deliver the full text (plus `footer`) of every part; returns every message posted.

        With `feedback` (the reply's key), the last message asks for 👍/👎 where the adapter
        can show that (ShowsFeedback).
        """
        body = self._closed_text()
        if footer:
            body = _join(body, footer)
        if self._final is None:
            self._feedback = feedback
        return await self._end(body)

    async def interrupt(self, reason: str) -> list[Posted]:
        """End with the partial text kept and a plain note saying it was interrupted and why."""
        note = t("⚠️ Interrupted: {reason}", reason=_sentence(reason))
        return await self._end(_join(self._closed_text(), note))

    async def cut_short(self, reason: str = CUT_SHORT) -> list[Posted]:
        """End a reply whose work was cancelled (shutdown, timeout): keeps its text, says so."""
        note = t("⚠️ Cut short: {reason}", reason=_sentence(t(reason)))
        return await self._end(_join(self._closed_text(), note))

    async def __aenter__(self) -> StreamingReply:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.finish()
            return
        try:
            if isinstance(exc, asyncio.CancelledError):
                await self.cut_short()
            else:
                await self.interrupt(_reason(exc))
        except Exception:
            # The original exception matters more; this one is only logged.
            log.exception("could not finalize an interrupted reply in %s", self.req.place)

    # --- the flusher ---------------------------------------------------------------------

    def _poke(self) -> None:
        if self._task is None:
            self._pledge(post=True, final=True)
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def _end(self, final: str) -> list[Posted]:
        if self._final is None:
            self._final = final if final.strip() else t(EMPTY_REPLY)
            self._ended.set()
            self._poke()
        assert self._task is not None
        # Shielded: if our caller is cancelled meanwhile, the final text still goes out.
        await asyncio.shield(self._task)
        return list(self.posted)

    async def _run(self) -> None:
        delivered = False
        try:
            try:
                await self._stream()
            finally:
                self._join(None)
            assert self._final is not None
            await self._deliver(self._final)
            delivered = True
        finally:
            self._pledge(post=False, final=False)
            try:
                if delivered:
                    await self._ask_feedback()
            finally:
                await self._finalize()
                await self._tidy()

    async def _stream(self) -> None:
        """Until the reply ends: post the first text at once, then the latest snapshot."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._ended.is_set():
                return
            if self._current is None:
                if self._token is None:
                    await self._posts.acquire()
                    self._token = self._posts
                if self._ended.is_set():
                    return  # the final text goes out with this post: no edit needed
                await self._roll_over(self.text)
                shown, end = self._snapshot(self.text)
                if shown.strip():
                    posted = await self._post(shown, end)
                    # Counted among the replies sharing spare writes from the start.
                    self._join(self._budget_for(posted, shown))
                continue
            pause = self._last_write + self.limits.edit_interval - loop.time()
            if pause > 0 and await self._ends_within(pause):
                return
            text = self.text
            if self._overflows(text):
                await self._roll_over(text)
                self._wake.set()
                continue
            if self._snapshot(text)[0] == self._shown:
                continue
            budget = await self._spare_turn()
            if budget is None:
                if self._ended.is_set():
                    return
                self._wake.set()  # the part overflowed meanwhile: roll over first
                continue
            shown, end = self._snapshot(self.text)
            await self._edit(shown, end, budget)

    async def _spare_turn(self) -> EditBudget | None:
        """Wait for this reply's turn at a spare token (its gap, then a token beyond every
        pledge) and take it; None when the reply ends or its part overflows first."""
        loop = asyncio.get_running_loop()
        while True:
            current = self._current
            assert current is not None
            budget = self._budget_for(current, self._snapshot(self.text)[0])
            self._join(budget)
            held = self._held(budget)
            outlook = budget.outlook(self._horizon)
            due = gap(outlook, held, horizon=self._horizon, floor=self.limits.edit_interval)
            pause = self._last_write + due - loop.time()
            if pause <= 0:
                if budget.try_acquire(reserve=budget.pledged + held):
                    return budget
                wait = RECHECK
                if not budget.waiting:
                    wait = min(budget.delay(budget.pledged + held + 1), RECHECK)
            else:
                wait = min(pause, RECHECK)
            if await self._ends_within(max(wait, 0.01)) or self._overflows(self.text):
                return None

    def _held(self, budget: EditBudget) -> int:
        """Tokens of `budget` held back beyond its own pledges: final texts pledged on the
        delete budget that it cannot serve now fall back on edits."""
        if budget is self._edits and self._deletes is not None:
            return self._deletes.shortfall()
        return 0

    def _join(self, budget: EditBudget | None) -> None:
        """Count this reply among those spending spare tokens of `budget` (None: no longer)."""
        if budget is self._joined:
            return
        if self._joined is not None:
            self._joined.leave()
        if budget is not None:
            budget.join()
        self._joined = budget

    async def _deliver(self, final: str) -> None:
        """Every remaining part in full, however long rate limits make that take."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._roll_over(final)
        shown = self._opener + final[self._offset :]
        if self._current is None:
            if shown.strip() or not self.posted:
                await self._post(shown or t(EMPTY_REPLY), len(final))
        elif shown != self._shown:
            await self._settle(shown, len(final), last=True)
        waited = loop.time() - started
        if waited > SLOW_FINAL:
            log.warning(
                "final text of a reply in %s took %.0f s of platform rate limits",
                self.req.place,
                waited,
            )

    async def _ends_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._ended.wait()
        except TimeoutError:
            return False
        return True

    # --- layout --------------------------------------------------------------------------

    def _overflows(self, source: str) -> bool:
        return self._measure(self._opener + source[self._offset :]) > self.limits.max_chars

    async def _roll_over(self, source: str) -> None:
        """While the current part overflows: finish it at a boundary, start the next one."""
        while self._overflows(source):
            part = next_part(
                source,
                self._offset,
                self.limits.max_chars,
                opener=self._opener,
                min_end=self._shown_end if self._current is not None else None,
                length=self._measure,
            )
            if self._current is None:
                await self._post(part.text, part.end)
            else:
                await self._settle(part.text, part.end)
            # This part's text is final: the platform may end its stream now.
            await self._finalize()
            self._next_message(part)

    def _next_message(self, part: Part) -> None:
        self._current = None
        self._offset = part.end
        self._opener = part.reopen
        self._shown = ""
        self._shown_end = part.end
        self._pledge(post=True, final=True)

    def _snapshot(self, source: str) -> tuple[str, int]:
        """What the current message should show now, and how far into `source` it reaches."""
        body = self._opener + source[self._offset :]
        end = len(source)
        soft = self.limits.max_chars - self._headroom
        if self._measure(body) > soft:
            # Near the limit, show only up to a boundary within the soft limit: the cut
            # still to come then has room to fall at a good boundary after everything shown.
            held = self._shown_end if self._shown_end > self._offset else None
            part = next_part(
                source, self._offset, soft, opener=self._opener, min_end=held, length=self._measure
            )
            end = max(part.end, self._shown_end)
            body = self._opener + source[self._offset : end]
        if self._status:
            with_status = _join(body, self._status)
            if self._measure(with_status) <= self.limits.max_chars:
                return with_status, end
        return body, end

    # --- writes --------------------------------------------------------------------------

    async def _post(self, text: str, end: int) -> Posted:
        posted = await self._required(
            lambda: self.adapter.reply(self.req, text, streamed=True), self._posts
        )
        self.posted.append(posted)
        self._open.append(posted)
        mark_visible()
        self._current = posted
        self._shown, self._shown_end = text, end
        self._last_write = asyncio.get_running_loop().time()
        # Now known: whether the message streams natively, whether it opens its thread.
        self._pledge(post=False, final=True)
        return posted

    async def _edit(self, text: str, end: int, budget: EditBudget) -> None:
        """An intermediate frame: its token was taken from `budget`; a failure drops it."""
        current = self._current
        assert current is not None
        try:
            await self.adapter.edit(current, text)
        except PlatformRateLimited as e:
            budget.penalize(e.retry_after)
            return
        except Exception:
            log.warning("intermediate edit failed in %s", self.req.place, exc_info=True)
            return
        self._shown, self._shown_end = text, end
        self._last_write = asyncio.get_running_loop().time()
        # A native stream the edit had to stop now takes its final text as an ordinary edit.
        self._pledge(post=self._pledged_post, final=True)

    async def _settle(self, text: str, end: int, *, last: bool = False) -> None:
        """Give the current message its final `text`: an edit, or a new message in its place
        when that shows sooner (see the class doc). 429s are waited out, never given up.

        The reply's `last` message, when it should ask for feedback and that takes an edit,
        gets its buttons with this very edit: no extra write for them.
        """
        loop = asyncio.get_running_loop()
        current = self._current
        assert current is not None
        # Decided again after each 429 (its Retry-After may make a new message sooner) and
        # when the edit takes longer than its budget said (a budget shared by replicas
        # learns of the others' writes only when it asks).
        while True:
            budget = self._budget_for(current, text)
            if self._repost_sooner(current, budget):
                break
            eta = budget.eta()
            patience = None
            if self._can_repost(current) and not math.isinf(eta):
                patience = eta + self._repost_after
            try:
                async with asyncio.timeout(patience):
                    await budget.acquire()
            except TimeoutError:
                continue
            with_buttons = last and self._buttons_by_edit(current)
            try:
                if with_buttons:
                    assert isinstance(self.adapter, ShowsFeedback) and self._feedback is not None
                    await self.adapter.ask_feedback(current, text, self._feedback)
                else:
                    await self.adapter.edit(current, text)
            except PlatformRateLimited as e:
                budget.penalize(e.retry_after)
                log.info("platform 429 in %s; retrying in %.2f s", self.req.place, e.retry_after)
                continue
            self._shown, self._shown_end = text, end
            self._last_write = loop.time()
            self._feedback_asked = self._feedback_asked or with_buttons
            return
        await self._repost(current, text, end)

    def _can_repost(self, current: Posted | None) -> bool:
        """Whether a final text may go out as a new message in place of `current` (None: a
        message not posted yet)."""
        if self._deletes is None or self._posts is self._edits:
            return False
        # A thread's first message: deleting it would leave its replies under a tombstone.
        return current is None or current.place.thread != current.id

    def _repost_sooner(self, current: Posted, budget: EditBudget) -> bool:
        """Whether posting the final text anew would show it sooner than editing `current`
        through `budget`."""
        if not self._can_repost(current):
            return False
        wait = budget.eta()
        return wait > self._repost_after and self._posts.eta() < wait

    def _budget_for(self, current: Posted, text: str) -> EditBudget:
        """The budget an edit of `current` to `text` draws from."""
        appends = self._append_budget(current)
        if appends is not None and text.startswith(self._shown):
            return appends
        return self._edits

    def _append_budget(self, current: Posted) -> EditBudget | None:
        if self._appends_apart is not None:
            return self._appends_apart.append_budget(current)
        return None

    async def _repost(self, old: Posted, text: str, end: int) -> None:
        """Post `text` as a new (final, never finalized) message, then retire `old` in the
        background: the text shows now, and the reply streams on (a rollover) meanwhile."""
        posted = await self._required(lambda: self.adapter.reply(self.req, text), self._posts)
        self.posted[self.posted.index(old)] = posted
        self._current = posted
        self._shown, self._shown_end = text, end
        self._last_write = asyncio.get_running_loop().time()
        streamed = old in self._open
        if streamed:
            self._open.remove(old)  # deleting a streamed message ends it: no finalize
        deletes = self._deletes
        assert deletes is not None
        # Pledged until done, so other replies' intermediate edits leave room for it.
        deletes.pledge()
        task = asyncio.get_running_loop().create_task(self._retire(old, streamed=streamed))
        self._retiring.add(task)
        task.add_done_callback(lambda _: deletes.unpledge())

    async def _retire(self, old: Posted, *, streamed: bool) -> None:
        """Delete a message whose text went out anew; if the platform refuses, point it there.
        Rate limits are waited out, however long."""
        deletes = self._deletes
        assert deletes is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await required(lambda: self.adapter.delete(old), deletes)
        except Exception:
            log.warning(
                "could not delete a superseded message in %s; editing it instead",
                self.req.place,
                exc_info=True,
            )
        else:
            if loop.time() - started > SLOW_FINAL:
                log.info(
                    "a superseded message in %s waited %.0f s for its delete",
                    self.req.place,
                    loop.time() - started,
                )
            return
        try:
            await required(lambda: self.adapter.edit(old, t(MOVED)), self._edits)
        except Exception:
            log.warning("could not tidy a superseded message in %s", self.req.place, exc_info=True)
        if streamed:
            self._open.append(old)
            await self._finalize()

    async def _tidy(self) -> None:
        """Wait for every superseded message to be retired (each handles its own failures)."""
        while self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
            self._retiring = {task for task in self._retiring if not task.done()}

    async def _required(self, call: Callable[[], Awaitable[T]], budget: EditBudget) -> T:
        """A write that must happen: wait for the budget, retry 429s after their Retry-After."""
        have_token = self._token is budget
        if have_token:
            self._token = None
        return await required(call, budget, have_token=have_token)

    async def _ask_feedback(self) -> None:
        """Buttons on the last message, when asked for and the adapter shows them. A nicety:
        an edit for them takes only spare budget (never a token pledged to another reply's
        post or final text), and they are left out when none comes within FEEDBACK_WAIT."""
        adapter, key = self.adapter, self._feedback
        if key is None or self._feedback_asked or not self.posted:
            return
        if not isinstance(adapter, ShowsFeedback):
            return
        last, text = self.posted[-1], self._shown
        try:
            if adapter.feedback_needs_edit(last) and not await self._spare_edit(FEEDBACK_WAIT):
                log.info("no feedback buttons in %s: no spare edit budget", self.req.place)
                return
            await adapter.ask_feedback(last, text, key)
        except PlatformRateLimited as e:
            self._edits.penalize(e.retry_after)
            log.info("no feedback buttons in %s: platform rate limit", self.req.place)
        except Exception:
            # The answer is delivered; only the buttons are missing.
            log.warning("no feedback buttons on a reply in %s", self.req.place, exc_info=True)

    def _buttons_by_edit(self, message: Posted) -> bool:
        """Whether `message` should take the feedback buttons with its final edit."""
        adapter = self.adapter
        return (
            self._feedback is not None
            and isinstance(adapter, ShowsFeedback)
            and adapter.feedback_needs_edit(message)
        )

    async def _spare_edit(self, within: float) -> bool:
        """Take an edit token beyond every pledge (and what finals pledged on the delete
        budget may still need), waiting at most `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self._edits.try_acquire(reserve=self._edits.pledged + self._held(self._edits)):
            left = deadline - loop.time()
            if left <= 0:
                return False
            wait = self._edits.delay(self._edits.pledged + self._held(self._edits) + 1)
            await asyncio.sleep(max(0.01, min(wait, RECHECK, left)))
        return True

    async def _finalize(self) -> None:
        """Tell the adapter that every streamed message posted so far is final (each once)."""
        while self._open:
            posted = self._open.pop(0)
            try:
                await self.adapter.finalize(posted)
            except Exception:
                # The text is delivered; a message left open is the platform's to time out.
                log.warning("could not finalize a message in %s", self.req.place, exc_info=True)

    def _pledge(self, *, post: bool, final: bool) -> None:
        """Declare the writes this reply will certainly still need (see the class doc).

        From the start a reply pledges its post and its final write (a reply whose stream ends
        before its post needs no more, but that is not known in advance).
        """
        if post != self._pledged_post:
            (self._posts.pledge if post else self._posts.unpledge)()
            self._pledged_post = post
        target = self._final_budget() if final else None
        if target is not self._final_pledge:
            if self._final_pledge is not None:
                self._final_pledge.unpledge()
            if target is not None:
                target.pledge()
            self._final_pledge = target

    def _final_budget(self) -> EditBudget:
        """The budget this reply's final write will most likely come from."""
        current = self._current
        if current is not None:
            appends = self._append_budget(current)
            if appends is not None:
                return appends
        if self._deletes is not None and self._can_repost(current):
            return self._deletes
        return self._edits

    def _closed_text(self) -> str:
        text = self.text
        return text + closing_fence(text)


def _join(body: str, line: str) -> str:
    if not body:
        return line
    return body + ("\n" if body.endswith("\n") else "\n\n") + line


# How Chinese sentences end (full-width).
_FULL_STOPS = "\u3002\uff01\uff1f"


def _sentence(reason: str) -> str:
    reason = reason.strip() or t("unknown reason")
    if reason[-1] in ".!?…" or reason[-1] in _FULL_STOPS:
        return reason
    return reason + ("。" if current() == "zh_CN" else ".")


def _reason(exc: BaseException) -> str:
    """A sentence for the user: the error's own user-facing text, never a traceback."""
    if isinstance(exc, UserFacingError):
        return exc.message
    user_message = getattr(exc, "user_message", None)
    if callable(user_message):
        text = user_message()
        if isinstance(text, str) and text:
            return text
    return t("something went wrong on our side")
