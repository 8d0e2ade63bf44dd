// tweetflow ui: follows a running run's log (server-sent events) and refreshes the pages of
// runs that are still running. No framework, no build step.
"use strict";

function logLine(l) {
  const div = document.createElement("div");
  div.className = "log-line level-" + (l.level || "");
  const part = (cls, text) => {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    div.appendChild(s);
    div.appendChild(document.createTextNode(" "));
  };
  part("ts", l.time || "");
  part("lvl", l.level || "");
  if (l.task) part("task", l.task + (l.attempt ? "#" + l.attempt : ""));
  part("msg", l.message || "");
  part("fields", l.fields || "");
  return div;
}

function followLog(box) {
  if (!window.EventSource) return;
  const state = document.getElementById("log-state");
  const url = box.dataset.src + "?from=" + encodeURIComponent(box.dataset.offset || "0");
  const source = new EventSource(url);
  if (state) state.textContent = "following the log…";
  source.addEventListener("line", (e) => {
    const nearBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
    box.appendChild(logLine(JSON.parse(e.data)));
    box.dataset.offset = e.lastEventId;
    if (nearBottom) box.scrollTop = box.scrollHeight;
  });
  source.addEventListener("end", () => {
    source.close();
    if (state) state.textContent = "end of the log";
    box.dataset.ended = "1";
  });
}

function refreshRun(run) {
  // While the run executes, swap in the fresh timeline, task table and status.
  const tick = async () => {
    try {
      const response = await fetch(location.href, { headers: { Accept: "text/html" } });
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("run");
      if (!fresh) return;
      if (!fresh.dataset.executing) {
        location.reload();
        return;
      }
      for (const id of ["gantt", "tasks", "run-status"]) {
        const old = document.getElementById(id);
        const neu = doc.getElementById(id);
        if (old && neu) old.replaceWith(neu);
      }
    } catch (e) {
      // The server may be restarting; try again at the next tick.
    }
    setTimeout(tick, 1500);
  };
  setTimeout(tick, 1500);
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("log");
  if (box) followLog(box);
  const run = document.getElementById("run");
  if (run && run.dataset.executing) refreshRun(run);
  const runs = document.getElementById("runs");
  if (runs && runs.dataset.refresh) {
    setTimeout(() => location.reload(), Number(runs.dataset.refresh));
  }
});
