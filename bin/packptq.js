#!/usr/bin/env node
'use strict';
require('../dist/lib/cli/main.js').main(process.argv).then((code) => { process.exitCode = code; });
