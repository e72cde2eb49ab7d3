// Loaded first: collects script errors, rejected promises, console.error calls and policy
// violations into window.__consoleErrors, so a test (or an operator) can see what went wrong.
(function () {
  "use strict";
  var errors = [];
  window.__consoleErrors = errors;
  window.addEventListener("error", function (e) {
    errors.push("error: " + (e.message || (e.target && e.target.src) || "resource failed to load"));
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + String(e.reason && e.reason.message || e.reason));
  });
  document.addEventListener("securitypolicyviolation", function (e) {
    errors.push("content security policy: " + e.violatedDirective + " " + e.blockedURI);
  });
  var original = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return original.apply(console, arguments);
  };
})();
