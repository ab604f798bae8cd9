// The settings form shows only the parameters the chosen provider sends (without this script, the
// page shows those of the saved provider).
(() => {
  "use strict";
  const provider = document.getElementById("provider");
  if (!provider) return;
  const showParams = () => {
    document.querySelectorAll(".param[data-providers]").forEach((param) => {
      param.hidden = !param.dataset.providers.split(" ").includes(provider.value);
    });
  };
  provider.addEventListener("change", showParams);
  showParams();
})();
