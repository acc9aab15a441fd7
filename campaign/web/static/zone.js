// The login form's clock: fills its hidden "zone" field with the IANA time zone this browser is in
// (Europe/Berlin), so that the pages of the session show the times of what happened (the audit log, "as of")
// on the staff member's own clock. Without this script the field stays empty and those times are in UTC.
(function () {
  "use strict";
  var field = document.querySelector('input[name="zone"]');
  if (field === null) {
    return;
  }
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    field.value = "";
  }
})();
