import{qa as a}from"./chunk-53FKICUR.js";import"./chunk-BN644RGE.js";export{a as expressionInterpreter};
