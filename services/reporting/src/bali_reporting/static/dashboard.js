// The dashboard's only script: the live alert board, ticking ages, rows that open their alert.
"use strict";

function humanDuration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d) return h ? `${d} d ${h} h` : `${d} d`;
  if (h) return m ? `${h} h ${m} min` : `${h} h`;
  if (m) return `${m} min`;
  return `${seconds % 60} s`;
}

function tickAges() {
  const now = Date.now();
  for (const element of document.querySelectorAll("time[data-raised]")) {
    const raised = Date.parse(element.dataset.raised);
    if (!Number.isNaN(raised)) element.textContent = humanDuration((now - raised) / 1000);
  }
}

function openRowsOnClick(container) {
  container.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a")) window.location.assign(row.dataset.href);
  });
}

function followBoard(board) {
  const state = document.getElementById("live-state");
  const source = new EventSource(board.dataset.stream);
  source.addEventListener("board", (event) => {
    // Keep keyboard focus on the same alert's link across the update.
    const focused = board.contains(document.activeElement)
      ? document.activeElement.closest("tr[data-alert-id]") : null;
    board.innerHTML = event.data;
    if (focused) {
      const again = board.querySelector(`tr[data-alert-id="${CSS.escape(focused.dataset.alertId)}"] a`);
      if (again) again.focus();
    }
    board.dataset.updated = String(Date.now());
    tickAges();
  });
  source.addEventListener("open", () => {
    if (state) { state.textContent = "live"; state.classList.remove("off"); }
  });
  source.addEventListener("error", () => {
    if (state) { state.textContent = "reconnecting"; state.classList.add("off"); }
    // Closed for good (the sign-in lapsed, or not a stream): load the page again, which
    // leads back to sign-in when that is what is needed.
    if (source.readyState === EventSource.CLOSED) window.setTimeout(() => window.location.reload(), 10000);
  });
  window.addEventListener("pagehide", () => source.close());
}

document.addEventListener("DOMContentLoaded", () => {
  const board = document.getElementById("board");
  if (board) {
    openRowsOnClick(board);
    if (board.dataset.stream && "EventSource" in window) followBoard(board);
  }
  tickAges();
  window.setInterval(tickAges, 1000);
});
