// Shared console state: agent facts, the session's write access, navigation and the
// polite status line read out by screen readers.

export const context = { health: null, writes: false, ready: Promise.resolve() };

export function navigate(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") query.set(k, v);
  const qs = query.toString();
  location.hash = `#/${path}${qs ? `?${qs}` : ""}`;
}

export function say(message) {
  document.getElementById("status").textContent = message;
}

// Content capture: prompt and completion text is shown only when the agent captures it.
const CONTENT_KEYS = /^(gen_ai\.(prompt|completion|input\.messages|output\.messages|system_instructions|tool\.call\.(arguments|result))|llm\.(prompts|completions)|traceloop\.entity\.(input|output))/;

export function isContentKey(key) {
  return CONTENT_KEYS.test(key);
}

export function captureOn() {
  return Boolean(context.health && context.health.capture_content);
}
