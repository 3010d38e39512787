// The API docs page: Swagger UI over this deployment's OpenAPI document.
// A served file, not an inline script, so the page's Content-Security-Policy needs no
// 'unsafe-inline'; everything it loads comes from this deployment.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The default validator badge is an image from validator.swagger.io: never ask it.
    validatorUrl: null,
    // Keys typed into "Authorize" stay in the page, never in the browser's storage.
    persistAuthorization: false,
    displayRequestDuration: true
  });
})();
