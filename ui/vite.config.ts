import { defineConfig } from "vitest/config";

// Built into the Python package (kernel/ui_dist), served at /_lk/ui/ by kernel/_ui.py. Fixed file
// names and no source maps: the same sources always build the same bytes, which .ci/run checks.
export default defineConfig({
  base: "/_lk/ui/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../kernel/ui_dist",
    emptyOutDir: true,
    assetsDir: "",
    sourcemap: false,
    target: "es2020",
    modulePreload: { polyfill: false },
    rollupOptions: {
      output: {
        entryFileNames: "app.js",
        chunkFileNames: "[name].js",
        assetFileNames: (asset) => ((asset.names?.[0] ?? "").endsWith(".css") ? "app.css" : "[name][extname]"),
      },
    },
  },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});
