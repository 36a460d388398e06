// Renders an OpenAPI 3.1 JSON document as a readable reference page.
// All DOM is built with createElement/textContent (never innerHTML) so that
// any hostile string inside the document is displayed as inert text.
"use strict";

(function () {
  const METHODS = ["get", "put", "post", "delete", "patch", "options", "head", "trace"];
  const CONSTRAINT_KEYS = [
    "format", "minLength", "maxLength", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    "uniqueItems", "minProperties", "maxProperties", "default",
  ];
  const MAX_DEPTH = 8; // stops runaway nesting even for long non-cyclic chains
  const has = (obj, key) => obj !== null && typeof obj === "object" && Object.prototype.hasOwnProperty.call(obj, key);
  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

  // --- tiny DOM helpers -----------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent, ...children) {
    for (const child of children) if (child) parent.appendChild(child);
    return parent;
  }
  function table(headers, rows) {
    const t = el("table", "grid");
    const head = add(el("thead"), add(el("tr"), ...headers.map((h) => el("th", null, h))));
    const body = el("tbody");
    for (const cells of rows) {
      add(body, add(el("tr"), ...cells.map((c) => (c instanceof Node ? add(el("td"), c) : el("td", null, c)))));
    }
    return add(t, head, body);
  }

  // --- $ref handling --------------------------------------------------------
  // Only local JSON pointers ("#/components/...") are supported; the page
  // never fetches anything except the document itself.
  function resolvePointer(doc, ref) {
    if (typeof ref !== "string" || !ref.startsWith("#/")) return undefined;
    let node = doc;
    for (const raw of ref.slice(2).split("/")) {
      let key;
      try { key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~"); } catch (e) { return undefined; }
      if (!has(node, key)) return undefined;
      node = node[key];
    }
    return node;
  }
  const refName = (ref) => String(ref).split("/").pop();
  // Follows $ref for non-schema objects (parameters, responses, bodies).
  function deref(doc, obj) {
    for (let i = 0; i < 10 && isObj(obj) && has(obj, "$ref"); i++) obj = resolvePointer(doc, obj.$ref);
    return isObj(obj) ? obj : {};
  }

  // --- schema -> short type label --------------------------------------------
  function typeLabel(schema, depth = 0) {
    if (!isObj(schema) || depth > MAX_DEPTH) return "any";
    if (has(schema, "$ref")) return refName(schema.$ref); // name only: no cycle risk
    for (const [key, sep] of [["anyOf", " | "], ["oneOf", " | "], ["allOf", " & "]]) {
      if (Array.isArray(schema[key])) return schema[key].map((s) => typeLabel(s, depth + 1)).join(sep);
    }
    // A bare const's type is implied by its value; the value itself is listed under constraints.
    if (has(schema, "const") && !schema.type) return schema.const === null ? "null" : Array.isArray(schema.const) ? "array" : typeof schema.const;
    const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
    if (types.length === 0) {
      if (schema.properties) return "object";
      if (schema.items) types.push("array");
      else return Array.isArray(schema.enum) ? "enum" : "any";
    }
    return types.map((t) => (t === "array" ? "array<" + typeLabel(schema.items, depth + 1) + ">" : String(t))).join(" | ");
  }

  function constraintText(schema) {
    if (!isObj(schema)) return "";
    // Patterns/formats shown raw: JSON quoting would double every regex backslash.
    const show = (k) => (k === "pattern" || k === "format" ? String(schema[k]) : JSON.stringify(schema[k]));
    const parts = CONSTRAINT_KEYS.filter((k) => has(schema, k)).map((k) => k + ": " + show(k));
    if (Array.isArray(schema.enum)) parts.push("enum: " + schema.enum.map((v) => JSON.stringify(v)).join(", "));
    if (has(schema, "const")) parts.push("const: " + JSON.stringify(schema.const));
    if (schema.deprecated) parts.push("deprecated");
    if (schema.readOnly) parts.push("read-only");
    if (schema.writeOnly) parts.push("write-only");
    return parts.join("; ");
  }

  // --- schema -> DOM -----------------------------------------------------------
  // `seen` holds the refs on the current path so recursive schemas render
  // as a back-reference instead of looping forever.
  function expand(doc, schema, seen) {
    if (isObj(schema) && has(schema, "$ref")) {
      const ref = schema.$ref;
      if (seen.has(ref)) return { cycle: refName(ref) };
      const target = resolvePointer(doc, ref);
      return { schema: isObj(target) ? target : {}, seen: new Set(seen).add(ref), name: refName(ref) };
    }
    return { schema: isObj(schema) ? schema : {}, seen };
  }
  // Worth a nested block only if there is structure beyond a type label.
  function isComplex(doc, schema, depth = 0) {
    if (!isObj(schema) || depth > 4) return false;
    const s = has(schema, "$ref") ? resolvePointer(doc, schema.$ref) : schema;
    if (!isObj(s)) return false;
    if (isObj(s.properties) || isObj(s.additionalProperties)) return true;
    if (s.items) return isComplex(doc, s.items, depth + 1);
    return ["anyOf", "oneOf", "allOf"].some((k) => Array.isArray(s[k]) && s[k].some((v) => isComplex(doc, v, depth + 1)));
  }

  function renderSchema(doc, schema, seen = new Set(), depth = 0) {
    const box = el("div", "schema");
    const x = expand(doc, schema, seen);
    if (x.cycle) return add(box, el("span", "muted", "↻ " + x.cycle + " (recursive, see above)"));
    if (depth > MAX_DEPTH) return add(box, el("span", "muted", "… (nested too deeply)"));
    const s = x.schema;
    add(box, add(el("div", "schema-head"), el("code", "type", x.name || typeLabel(s)),
      x.name ? el("span", "muted", " " + typeLabel(s)) : null));
    if (s.description) add(box, el("p", "desc", s.description));
    const cons = constraintText(s);
    if (cons) add(box, el("p", "constraints", cons));

    for (const key of ["anyOf", "oneOf", "allOf"]) {
      if (!Array.isArray(s[key]) || !s[key].some((v) => isComplex(doc, v))) continue;
      const label = key === "allOf" ? "All of" : key === "oneOf" ? "Exactly one of" : "Any of";
      s[key].forEach((v, i) => add(box, el("div", "variant", label + " — option " + (i + 1)), renderSchema(doc, v, x.seen, depth + 1)));
    }
    if (s.items && isComplex(doc, s.items)) add(box, el("div", "variant", "Items"), renderSchema(doc, s.items, x.seen, depth + 1));
    if (isObj(s.additionalProperties)) add(box, el("div", "variant", "Additional properties"), renderSchema(doc, s.additionalProperties, x.seen, depth + 1));

    if (isObj(s.properties)) {
      const required = new Set(Array.isArray(s.required) ? s.required : []);
      const rows = Object.keys(s.properties).map((name) => {
        const prop = s.properties[name];
        const target = isObj(prop) && has(prop, "$ref") ? resolvePointer(doc, prop.$ref) : prop;
        const details = el("div");
        const complex = isComplex(doc, prop);
        // A nested block shows the target's own description, so don't repeat it here.
        const d = isObj(prop) && prop.description ? prop.description : !complex && isObj(target) ? target.description : "";
        if (d) add(details, el("div", "desc", d));
        if (complex) add(details, renderSchema(doc, prop, x.seen, depth + 1));
        return [el("code", null, name), el("code", "type", typeLabel(prop)),
          required.has(name) ? el("span", "req", "required") : el("span", "muted", "optional"),
          constraintText(target), details];
      });
      add(box, table(["Name", "Type", "Required", "Constraints", "Description"], rows));
    }
    return box;
  }

  // Request bodies and responses carry one schema per media type.
  function renderContent(doc, content) {
    const wrap = el("div");
    if (!isObj(content)) return wrap;
    for (const [mediaType, media] of Object.entries(content)) {
      add(wrap, el("div", "media", mediaType));
      if (isObj(media) && media.schema) add(wrap, renderSchema(doc, media.schema));
    }
    return wrap;
  }

  // --- operations ------------------------------------------------------------------
  // Operation-level `security` overrides the global one; an empty list means "public". Each entry
  // is a scheme, the roles or scopes it needs (OpenAPI 3.1 allows these for any scheme), and the
  // scheme's description, which says what the credential is.
  function securityOf(doc, op) {
    const reqs = Array.isArray(op.security) ? op.security : Array.isArray(doc.security) ? doc.security : [];
    const schemes = (doc.components && isObj(doc.components.securitySchemes) && doc.components.securitySchemes) || {};
    const found = [];
    for (const req of reqs) {
      if (!isObj(req)) continue;
      for (const [name, needs] of Object.entries(req)) {
        const sc = has(schemes, name) && isObj(schemes[name]) ? schemes[name] : {};
        const bearer = sc.type === "http" && String(sc.scheme).toLowerCase() === "bearer";
        const roles = Array.isArray(needs) && needs.length ? " needing " + needs.map(String).join(", ") : "";
        found.push({
          name: name,
          label: name + (bearer ? " (Bearer token)" : "") + roles,
          description: typeof sc.description === "string" ? sc.description : "",
        });
      }
    }
    return found;
  }

  function renderParameters(doc, params) {
    const rows = params.map((p) => [
      el("code", null, p.name), p.in || "",
      p.required ? el("span", "req", "required") : el("span", "muted", "optional"),
      el("code", "type", typeLabel(p.schema)),
      [constraintText(deref(doc, p.schema)), p.description].filter(Boolean).join(" — "),
    ]);
    return table(["Name", "In", "Required", "Type", "Constraints / description"], rows);
  }

  function renderOperation(doc, path, method, pathItem, op) {
    const details = el("details", "op op-" + method);
    const security = securityOf(doc, op);
    add(details, add(el("summary"), el("span", "badge badge-" + method, method.toUpperCase()),
      el("code", "path", path), op.summary ? el("span", "summary", op.summary) : null,
      security.length ? el("span", "lock", "🔒 " + security.map((sc) => sc.name).join(" or ")) : null,
      op.deprecated ? el("span", "deprecated", "deprecated") : null));
    const body = el("div", "op-body");
    add(details, body);
    if (op.description) add(body, el("p", "desc", op.description));
    if (op.operationId) add(body, add(el("p", "muted", "operationId: "), el("code", null, op.operationId)));
    add(body, el("p", security.length ? "auth-note" : "muted", security.length
      ? "Requires authentication: " + security.map((sc) => sc.label).join(" or ") : "No authentication required."));
    for (const sc of security) if (sc.description) add(body, el("p", "desc auth-scheme", sc.name + ": " + sc.description));

    // Path-level parameters apply too unless the operation redefines them (same name + in).
    const params = new Map();
    const list = (v) => (Array.isArray(v) ? v : []);
    for (const p of [...list(pathItem.parameters), ...list(op.parameters)].map((q) => deref(doc, q)).filter((q) => q.name)) {
      params.set(String(p.in) + ":" + String(p.name), p);
    }
    if (params.size) add(body, el("h4", null, "Parameters"), renderParameters(doc, [...params.values()]));

    if (op.requestBody) {
      const rb = deref(doc, op.requestBody);
      add(body, el("h4", null, "Request body" + (rb.required ? " (required)" : "")));
      if (rb.description) add(body, el("p", "desc", rb.description));
      add(body, renderContent(doc, rb.content));
    }
    if (isObj(op.responses)) {
      add(body, el("h4", null, "Responses"));
      for (const [status, raw] of Object.entries(op.responses)) {
        const r = deref(doc, raw);
        const cls = /^2/.test(status) ? "ok" : /^[45]/.test(status) ? "err" : "other";
        add(body, add(el("div", "response"),
          add(el("div", "response-head"), el("span", "status status-" + cls, status), el("span", "desc", r.description || "")),
          renderContent(doc, r.content)));
      }
    }
    return details;
  }

  // --- page ---------------------------------------------------------------------------
  function renderDocument(doc, root) {
    const info = isObj(doc.info) ? doc.info : {};
    document.title = (info.title || "API") + " — API documentation";
    document.getElementById("doc-title").textContent = info.title || "API";
    const status = document.getElementById("doc-status");
    status.className = "meta";
    status.textContent = "Version " + (info.version || "?") + " · OpenAPI " + (doc.openapi || "?");
    if (info.description) add(root, el("p", "desc lead", info.description));

    const filter = el("input", "filter");
    Object.assign(filter, { type: "search", placeholder: "Filter by path, e.g. /scores", autocomplete: "off" });
    filter.setAttribute("aria-label", "Filter operations by path");
    const count = el("span", "muted count");
    const toggle = el("button", "toggle", "Expand all");
    toggle.type = "button";
    add(root, add(el("div", "toolbar"), filter, toggle, count));

    const ops = [];
    const list = el("div", "ops");
    add(root, list);
    for (const [path, item] of Object.entries(isObj(doc.paths) ? doc.paths : {})) {
      const pathItem = deref(doc, item);
      for (const method of METHODS) {
        if (!isObj(pathItem[method])) continue;
        const node = renderOperation(doc, path, method, pathItem, pathItem[method]);
        ops.push({ node, path: path.toLowerCase() });
        add(list, node);
      }
    }
    if (!ops.length) add(list, el("p", "muted", "This document defines no operations."));

    const applyFilter = () => {
      const q = filter.value.trim().toLowerCase();
      let shown = 0;
      for (const op of ops) shown += (op.node.hidden = !op.path.includes(q)) ? 0 : 1;
      count.textContent = shown + " of " + ops.length + " operations";
    };
    filter.addEventListener("input", applyFilter);
    toggle.addEventListener("click", () => {
      const open = toggle.textContent === "Expand all";
      for (const op of ops) op.node.open = open;
      toggle.textContent = open ? "Collapse all" : "Expand all";
    });
    applyFilter();
  }

  function renderError(root, url, message) {
    const status = document.getElementById("doc-status");
    status.textContent = "";
    const box = add(el("div", "error"), el("strong", null, "Could not load the API description. "), el("span", null, message + " "));
    const link = el("a", null, "Open the raw document");
    link.href = url; // url comes from our own template, not from the fetched document
    box.setAttribute("role", "alert");
    add(root, add(box, link));
  }

  async function main() {
    const root = document.getElementById("docs");
    const content = document.getElementById("doc-content");
    const url = root && root.dataset.openapiUrl;
    if (!url || !content) return;
    let doc;
    try {
      const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!resp.ok) throw new Error("Server answered " + resp.status + " " + resp.statusText + ".");
      doc = await resp.json();
      if (!isObj(doc)) throw new Error("The response is not a JSON object.");
    } catch (err) {
      renderError(content, url, err && err.name === "SyntaxError" ? "The response is not valid JSON." : String(err.message || err));
      return;
    }
    try {
      renderDocument(doc, content);
    } catch (err) {
      renderError(content, url, "The document could not be rendered (" + String(err.message || err) + ").");
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
