// CSS imports are bundled by esbuild into widget.css.
declare module "*.css";
