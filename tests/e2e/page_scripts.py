"""What the browser tests (and bench/viewers.py) read from or do to a page, as JavaScript for `page.evaluate`."""

# the run page's live charts (app/live_chart.js) say what they show now on their element
LAST_STEP_IN_FIRST_CHART = "() => Number(document.querySelector('.live-chart')?.dataset.lastStep || 0)"

POINTS_IN_FIRST_CHART = "() => Number(document.querySelector('.live-chart')?.dataset.points || 0)"

LIVE_CHART = ".live-chart canvas"  # a live chart drawn

HIDE_THE_TAB = """() => {  // what the browser does when another tab is brought to the front
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""

SHOW_THE_TAB = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""

# Notes, in the page itself, when the first live chart shows each new step (wall clock, ms): a bench that asks
# eight busy tabs in turn would otherwise add its own round trips to the lag it measures.
RECORD_WHEN_STEPS_ARE_SHOWN = """() => {
  if (window.stepsShown) return;
  window.stepsShown = [];
  new MutationObserver(() => {
    const step = Number(document.querySelector('.live-chart')?.dataset.lastStep || 0);
    const last = window.stepsShown[window.stepsShown.length - 1];
    if (!last || step > last[1]) window.stepsShown.push([Date.now(), step]);
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-last-step']});
}"""

WHEN_STEP_WAS_SHOWN = "(step) => (window.stepsShown.find(([, shown]) => shown >= step) || [null])[0]"

# app/live_chart.js mounted alone on a page of the app's origin (where it finds uPlot): `window.sendToChart(data)`
# hands it a message as Streamlit would, and `window.resends` collects what it asks the server for.
MOUNT_A_LIVE_CHART = """async (source) => {
  const module = await import(URL.createObjectURL(new Blob([source], {type: 'text/javascript'})));
  const parentElement = document.createElement('div');
  parentElement.style.width = '600px';
  document.body.appendChild(parentElement);
  window.resends = [];
  window.sendToChart = (data) => { module.default({parentElement, data,
    setTriggerValue: (name, value) => window.resends.push([name, value])}); };
}"""
