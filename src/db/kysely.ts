/**
 * kysely, as rvx's code imports it at run time (types may come from 'kysely' directly).
 *
 * kysely ships as some 260 modules, and loading them was the largest part of
 * every command's start after oclif itself. `npm run build` replaces this
 * file's output with a single-file bundle of the same kysely (esbuild, see the
 * build script), so the built CLI loads one module; from the sources (tsx:
 * tests, bin/dev.js) this is kysely itself.
 */
export * from 'kysely'
