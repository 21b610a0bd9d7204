// Sekisho console: the little script there is. Pages work without it; it adds copy buttons and
// asks before destructive actions.
document.addEventListener("click", (ev) => {
  const copy = ev.target.closest("[data-copy]");
  if (copy) {
    const el = document.getElementById(copy.dataset.copy);
    if (el && navigator.clipboard) {
      navigator.clipboard.writeText(el.textContent.trim()).then(() => { copy.textContent = copy.dataset.done; });
    }
  }
});
document.addEventListener("submit", (ev) => {
  const msg = ev.target.dataset.confirm;
  if (msg && !window.confirm(msg)) ev.preventDefault();
});

// The recording player: replays an asciicast v2 file's output events into a <pre>, with a small
// terminal model (carriage return, backspace, erase line, clear screen; other escapes dropped).
class Screen {
  constructor(pre) { this.pre = pre; this.lines = [""]; this.col = 0; }
  write(text) {
    let i = 0;
    while (i < text.length) {
      const ch = text[i];
      if (ch === "\x1b") {
        const m = /^\x1b(?:\[([0-9;?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-B]|.)/.exec(text.slice(i));
        const len = m ? m[0].length : 1;
        if (m && m[2] === "J" && (m[1] === "2" || m[1] === "3")) { this.lines = [""]; this.col = 0; }
        if (m && m[2] === "K") { const l = this.lines.length - 1; this.lines[l] = this.lines[l].slice(0, this.col); }
        if (m && m[2] === "H" && (m[1] === "" || m[1] === "1;1")) { this.lines = [""]; this.col = 0; }
        i += len;
        continue;
      }
      const l = this.lines.length - 1;
      if (ch === "\n") { this.lines.push(""); this.col = 0; }
      else if (ch === "\r") { this.col = 0; }
      else if (ch === "\b") { this.col = Math.max(0, this.col - 1); }
      else if (ch >= " " || ch === "\t") {
        const line = this.lines[l].padEnd(this.col, " ");
        this.lines[l] = line.slice(0, this.col) + ch + line.slice(this.col + 1);
        this.col += 1;
      }
      i += 1;
    }
    if (this.lines.length > 5000) this.lines = this.lines.slice(-5000);
  }
  render() { this.pre.textContent = this.lines.join("\n"); this.pre.scrollTop = this.pre.scrollHeight; }
}

async function setupPlayer(el) {
  const pre = el.querySelector(".screen");
  const resp = await fetch(el.dataset.cast, { credentials: "same-origin" });
  if (!resp.ok) { pre.textContent = "(" + resp.status + ")"; return; }
  const events = (await resp.text()).split("\n").slice(1).filter((l) => l.trim())
    .map((l) => { try { return JSON.parse(l); } catch (e) { return null; } })
    .filter((e) => e && e[1] === "o");
  let timer = null;
  const play = (speed) => {
    clearTimeout(timer);
    const screen = new Screen(pre);
    let n = 0;
    const start = performance.now();
    const step = () => {
      const now = (performance.now() - start) / 1000 * speed;
      while (n < events.length && events[n][0] <= now) { screen.write(events[n][1]); n += 1; }
      screen.render();
      if (n < events.length) timer = setTimeout(step, Math.min(500, Math.max(10, (events[n][0] - now) * 1000 / speed)));
      else el.dataset.done = "true";
    };
    step();
  };
  el.querySelector("[data-play]").addEventListener("click", () => play(1));
  el.querySelector("[data-speed]").addEventListener("click", (ev) => play(Number(ev.target.dataset.speed)));
  el.querySelector("[data-all]").addEventListener("click", () => play(1e9));
  play(1e9);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("#player[data-cast]").forEach((el) => { setupPlayer(el); });
});
