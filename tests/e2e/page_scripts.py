"""What the browser tests (and bench/viewers.py) read from or do to a page, as JavaScript for `page.evaluate`."""

LAST_STEP_IN_FIRST_CHART = """() => {
  const plot = document.querySelector('.js-plotly-plot');
  if (!plot || !plot._fullData) return 0;
  return Math.max(0, ...plot._fullData.map(trace => trace.x && trace.x.length ? trace.x[trace.x.length - 1] : 0));
}"""

POINTS_IN_FIRST_CHART = """() => {
  const plot = document.querySelector('.js-plotly-plot');
  return plot && plot._fullData ? Math.max(0, ...plot._fullData.map(trace => (trace.x || []).length)) : 0;
}"""

HIDE_THE_TAB = """() => {  // what the browser does when another tab is brought to the front
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""

SHOW_THE_TAB = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
