// /api/docs: Swagger UI (served from the swagger-ui-py package's files) on this server's OpenAPI
// document. A file rather than an inline script, so that the page's Content-Security-Policy
// (default-src 'self') needs no exception.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    displayRequestDuration: true,
    // Off the default: Swagger UI would send the document to a validator on the internet.
    validatorUrl: null,
  });
});
