// The rules CI holds the dashboards' scripts to: eslint's recommended set, browser globals,
// and no way to turn user data into markup or code.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: { ...globals.browser },
    },
    rules: {
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
      "no-restricted-properties": ["error",
        { property: "innerHTML", message: "user data goes in with textContent" },
        { property: "outerHTML", message: "user data goes in with textContent" },
        { object: "document", property: "write", message: "build the DOM instead" }],
      "eqeqeq": "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-unused-vars": ["error", { args: "none" }],
    },
  },
];
