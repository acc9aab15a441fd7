// The template editor's draft, kept in this tab: sending the editor's form (Preview, Save) copies the text into
// the tab's sessionStorage. A save sent after the session ended is not read (the login page comes instead, then
// the editor again, with the saved text): when the editor opens with a text other than the draft kept, and not
// just saved, the draft is put back in the field, saying so, with a button to drop it. The page shows the text
// the server had whenever the draft matches it, so the draft is then dropped. sessionStorage: this tab only, gone
// with it, never sent anywhere; nothing here runs without the editor's form. Without this script the editor works
// as before and an ended session loses what was typed.
(function () {
  "use strict";
  var MAX_AGE_MS = 24 * 3600 * 1000; // an older draft (a tab left open for days) is dropped, not offered
  var form = document.getElementById("editor-form");
  var field = document.getElementById("text");
  var storage = null;
  try {
    storage = window.sessionStorage;
  } catch (error) {
    storage = null; // storage refused (a browser's privacy setting): nothing is kept
  }
  if (form === null || field === null || storage === null || field.readOnly) {
    return;
  }
  var key = "campaign-draft:" + form.getAttribute("action");
  var limit = Number(form.getAttribute("data-draft-limit")) || 0;

  function drop() {
    try {
      storage.removeItem(key);
    } catch (error) {
      // nothing to do: the draft stays until the tab closes
    }
  }

  var kept = null;
  try {
    kept = JSON.parse(storage.getItem(key) || "null");
  } catch (error) {
    kept = null;
  }
  var fresh = kept !== null && typeof kept.text === "string" && Date.now() - Number(kept.at) < MAX_AGE_MS;
  if (!fresh || kept.text === field.value || document.getElementById("done") !== null) {
    drop(); // none, too old, the text shown already, or saved
  } else {
    var saved = field.value;
    field.value = kept.text;
    var note = document.createElement("p");
    note.className = "notice";
    note.id = "draft-restored";
    note.setAttribute("role", "status");
    note.textContent = "The text you had typed is back in the field, as this tab kept it: it is not saved yet. ";
    var discard = document.createElement("button");
    discard.type = "button";
    discard.textContent = "Drop it";
    discard.addEventListener("click", function () {
      field.value = saved;
      drop();
      note.remove();
      field.dispatchEvent(new Event("change", { bubbles: true })); // the live preview follows
    });
    note.appendChild(discard);
    var editor = form.parentNode; // the editor's box, form and preview side by side: the note goes above it
    editor.parentNode.insertBefore(note, editor);
    // The live preview follows (htmx posts on "change"), once htmx has set itself up on the page: htmx does at
    // DOMContentLoaded, which comes after this deferred script ran, and before "load".
    var preview = function () {
      field.dispatchEvent(new Event("change", { bubbles: true }));
    };
    if (document.readyState === "complete") {
      preview();
    } else {
      window.addEventListener("load", preview);
    }
  }

  form.addEventListener("submit", function () {
    // A draft over the form's limit cannot be saved anyway (a 413 page says so): not kept to come back.
    if (limit && field.value.length > limit) {
      drop();
      return;
    }
    try {
      storage.setItem(key, JSON.stringify({ text: field.value, at: Date.now() }));
    } catch (error) {
      drop(); // over the browser's quota: the older draft would mislead
    }
  });
})();
