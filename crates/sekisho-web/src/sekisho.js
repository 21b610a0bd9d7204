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

// The recording player: asciinema-player (vendored, served by the relay) plays the asciicast v2
// file with its own terminal, seeking and speed; the speed buttons start it again at that speed,
// and a command's time in the table seeks to it.
function setupPlayer(el) {
  const screen = el.querySelector(".screen");
  if (!window.AsciinemaPlayer) { screen.textContent = "(asciinema-player did not load)"; return; }
  let player = null;
  const start = (speed, at) => {
    if (player) player.dispose();
    player = window.AsciinemaPlayer.create(el.dataset.cast, screen, {
      speed: speed, startAt: at || 0, idleTimeLimit: 2, fit: "width", preload: true, autoPlay: speed > 0,
      terminalFontFamily: "ui-monospace, 'Noto Sans Mono CJK JP', monospace",
    });
    player.addEventListener("play", () => { el.dataset.state = "playing"; });
    player.addEventListener("ended", () => { el.dataset.state = "ended"; });
  };
  el.querySelectorAll("[data-speed]").forEach((b) => {
    b.addEventListener("click", () => start(Number(b.dataset.speed), 0));
  });
  document.querySelectorAll("[data-seek]").forEach((b) => {
    b.addEventListener("click", () => {
      if (!player) start(1, 0);
      player.seek(Number(b.dataset.seek)).then(() => player.play());
    });
  });
  start(1, 0);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("#player[data-cast]").forEach((el) => { setupPlayer(el); });
});
