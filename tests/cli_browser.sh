#!/usr/bin/env bash
# cli_browser.sh: a lesson's page in a real browser (issue 20; viz/lesson_html.c). `seek lesson 13
# --html` renders lesson 13 (its cell 3 writes a picture), then Debian's chromium, headless:
#   1. --dump-dom of a copy of the page with a probe script added before </body> (the page itself
#      has none): after the load event it writes into the document how many images there are, how
#      many loaded (complete and naturalWidth > 0), the length of the page's text and its height.
#      Every image must have loaded, and the text and height be a page's, not an empty one's.
#   2. --screenshot of the page as it is, then the screenshot, as a data: URI, drawn on a canvas
#      by a second probe page that counts the pixels differing from the top-left one: a blank
#      rendering fails.
# Controls, so neither check can pass by saying nothing: the same probe on a copy of the page whose
# first picture's bytes are cut must count one image not loaded, and a blank page's screenshot
# must count no differing pixel.
# Where chromium is not installed or cannot start here (or seek has no libcmark), the script
# prints SKIP and exits 77: tests/run.sh reports it as skipped, never as passed. Running as root
# needs --no-sandbox. scripts/install-deps.sh --browser installs chromium (make test asks for it).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh

LESSON=${LESSON:-13}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$CHROMIUM" ]; then
  echo "SKIP chromium is not installed (bash scripts/install-deps.sh --browser installs it)"
  exit 77
fi
flags=(--headless --disable-gpu --no-first-run --disable-extensions --user-data-dir="$TMP/profile"
       --virtual-time-budget=10000 --window-size=1280,1600)
[ "$(id -u)" = 0 ] && flags+=(--no-sandbox)
# chrome NAME ARGS...: one headless run, its stdout in $TMP/NAME.out; at most 120 s
chrome() {
  local name=$1; shift
  timeout 120 "$CHROMIUM" "${flags[@]}" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
}
chrome alive --dump-dom 'data:text/html,<p>alive</p>'
rc=$?
if [ $rc -ne 0 ] || ! grep -q '<p>alive</p>' "$TMP/alive.out"; then
  echo "SKIP $CHROMIUM cannot run here (exit $rc): $(grep -iv 'dbus\|^$' "$TMP/alive.err" | tail -n 1 | cut -c1-200)"
  exit 77
fi
"$SEEK" lesson "$LESSON" --html "$TMP/page.html" >"$TMP/out" 2>"$TMP/err"
if grep -q 'needs libcmark' "$TMP/err"; then
  echo "SKIP this seek has no libcmark, so no page to render (bash scripts/install-deps.sh, then make)"
  exit 77
fi
grep -q "^wrote $TMP/page.html (.*[1-9][0-9]* pictures\?$" "$TMP/out" && ok || bad "seek lesson $LESSON --html: $(head -c 300 "$TMP/err")"

# the probe: after load, one line in a <pre id="probe"> that --dump-dom prints
probe='<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images), loaded = 0;
  imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) loaded++; });
  var p = document.createElement("pre");
  p.id = "probe";
  p.textContent = "probe: images " + imgs.length + " loaded " + loaded + " text " + document.body.innerText.length +
                  " height " + document.documentElement.scrollHeight;
  document.body.appendChild(p);
});
</script>'
with_probe() { # page.html out.html: the page with the probe before </body>
  awk -v probe="$probe" '/^<\/body>$/ { print probe } { print }' "$1" >"$2"
}
with_probe "$TMP/page.html" "$TMP/probed.html"
chrome dom --dump-dom "file://$TMP/probed.html"
read -r _ _ n _ loaded _ text _ height < <(grep -o 'probe: images [0-9]* loaded [0-9]* text [0-9]* height [0-9]*' "$TMP/dom.out")
if [ -z "${n:-}" ]; then
  bad "the probe wrote nothing into the page: $(grep -iv dbus "$TMP/dom.err" | tail -n 2)"
else
  [ "$n" -ge 1 ] && [ "$loaded" = "$n" ] && ok || bad "images: $loaded of $n loaded"
  [ "$n" = "$(grep -o '<img ' "$TMP/page.html" | wc -l)" ] && ok || bad "the browser saw $n images, the page has $(grep -o '<img ' "$TMP/page.html" | wc -l)"
  [ "$text" -ge 2000 ] && [ "$height" -ge 3000 ] && ok || bad "the page rendered as text $text, height $height px: blank?"
fi
# control: a picture whose bytes are cut must be counted as not loaded
sed '0,/src="data:image\/png;base64,/s/src="data:image\/png;base64,[A-Za-z0-9+\/]\{64\}/src="data:image\/png;base64,/' \
  "$TMP/page.html" >"$TMP/cut.html"
cmp -s "$TMP/page.html" "$TMP/cut.html" && bad "control: the picture was not cut"
with_probe "$TMP/cut.html" "$TMP/cut-probed.html"
chrome cut --dump-dom "file://$TMP/cut-probed.html"
read -r _ _ cn _ cloaded _ < <(grep -o 'probe: images [0-9]* loaded [0-9]*' "$TMP/cut.out")
[ -n "${cn:-}" ] && [ "$cloaded" = $((cn - 1)) ] && ok || bad "control: a cut picture was not seen as broken (images ${cn:-?}, loaded ${cloaded:-?})"

# the screenshot, and a blank page's, each drawn on a canvas: pixels that differ from the corner
chrome shot --screenshot="$TMP/shot.png" "file://$TMP/page.html"
chrome blank --screenshot="$TMP/blank.png" 'data:text/html,<body style="background:#fff"></body>'
if [ ! -s "$TMP/shot.png" ] || [ ! -s "$TMP/blank.png" ]; then
  bad "no screenshot: $(grep -iv dbus "$TMP/shot.err" | tail -n 1)"
else
  {
    echo '<body>'
    for s in shot blank; do echo "<img id=\"$s\" src=\"data:image/png;base64,$(base64 -w0 "$TMP/$s.png")\">"; done
    echo '<script>
window.addEventListener("load", function () {
  ["shot", "blank"].forEach(function (id) {
    var i = document.getElementById(id), c = document.createElement("canvas");
    c.width = i.naturalWidth; c.height = i.naturalHeight;
    var g = c.getContext("2d"); g.drawImage(i, 0, 0);
    var d = g.getImageData(0, 0, c.width, c.height).data, n = 0;
    for (var k = 0; k < d.length; k += 4)
      if (Math.abs(d[k] - d[0]) + Math.abs(d[k + 1] - d[1]) + Math.abs(d[k + 2] - d[2]) > 48) n++;
    var p = document.createElement("pre");
    p.textContent = "pixels: " + id + " " + c.width + "x" + c.height + " differing " + n;
    document.body.appendChild(p);
  });
});
</script></body>'
  } >"$TMP/measure.html"
  chrome measure --dump-dom "file://$TMP/measure.html"
  read -r _ _ size _ differ < <(grep -o 'pixels: shot [0-9]*x[0-9]* differing [0-9]*' "$TMP/measure.out")
  read -r _ _ _ _ bdiffer < <(grep -o 'pixels: blank [0-9]*x[0-9]* differing [0-9]*' "$TMP/measure.out")
  # the page: at least 2% of the window's pixels are ink (lesson 13 has about 8%); a blank: none
  [ "${size:-}" = 1280x1600 ] && [ "${differ:-0}" -ge $((1280 * 1600 / 50)) ] && ok \
    || bad "the screenshot looks blank: ${size:-?}, ${differ:-?} pixels differ from the corner"
  [ "${bdiffer:-x}" = 0 ] && ok || bad "control: a blank page's screenshot counted ${bdiffer:-?} differing pixels"
  echo "browser: $n images, $loaded loaded; screenshot $size with $differ pixels of ink ($((differ * 100 / (1280 * 1600)))%)"
fi
finish
